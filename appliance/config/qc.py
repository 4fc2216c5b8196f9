"""The `[qc]` section: model, decision policy and evidence of the quality-control pipeline; its camera is
one of the sources of appliance/config/camera.py."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from appliance.config.base import Settings
from appliance.config.camera import CameraSettings


class ClassPolicySettings(Settings):
    """What a class means for the line."""

    severity: Literal["critical", "warning", "info"]
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    debounce: Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(min_length=2, max_length=2)] = [1, 1]

    @model_validator(mode="after")
    def _k_of_n(self) -> ClassPolicySettings:
        k, n = self.debounce
        if k > n:
            raise ValueError(f"debounce [{k}, {n}]: k frames out of n needs k <= n")
        return self


class EvidenceSettings(Settings):
    """Frames of rejects kept on disk: in a folder of the data directory unless `outside_data_dir` says
    that `dir` is an absolute path elsewhere (the store deletes old evidence in it: docs/qc.md)."""

    outside_data_dir: bool = False  # before `dir`: its check reads this
    dir: Annotated[str, Field(min_length=1)] = "evidence"  # under the data directory
    budget_mb: Annotated[float, Field(gt=0, le=1_000_000)] = 200.0
    thumbnail_px: Annotated[int, Field(ge=16, le=2048)] = 160
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 90

    @field_validator("dir")
    @classmethod
    def _inside_the_data_directory(cls, value: str, info: ValidationInfo) -> str:
        path = PurePosixPath(value)
        if info.data.get("outside_data_dir"):
            if not path.is_absolute():
                raise ValueError(f"{value!r}: with outside_data_dir = true, give an absolute path")
            return value
        if path.is_absolute() or ".." in path.parts or path == PurePosixPath("."):
            raise ValueError(
                f"{value!r} is not a folder inside the data directory; to keep evidence elsewhere, give "
                "an absolute path and outside_data_dir = true"
            )
        return value


def _check_label(value: str) -> str:
    """A label names evidence files (appliance/qc/evidence_files.py): no folder part, nothing hidden, no
    control characters, short enough for a file name with its time stamp and frame number."""
    if (
        value.startswith(".")
        or any(c in value for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise ValueError(
            f"{value!r}: a class name may not start with '.' or hold '/', '\\' or control characters"
        )
    return value


Label = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_label)]


class DetectionSettings(Settings):
    """Which output holds what, for an SSD-style model (TFLite's post-processing order by default)."""

    boxes: Annotated[int, Field(ge=0)] = 0
    classes: Annotated[int, Field(ge=0)] = 1
    scores: Annotated[int, Field(ge=0)] = 2
    count: Annotated[int, Field(ge=0)] = 3


class QcSettings(Settings):
    """A camera, a LiteRT model and what its classes mean."""

    model: Annotated[str, Field(min_length=1)]  # .tflite, relative to the config file
    labels: Annotated[list[Label], Field(min_length=1)]  # in output order
    color: Literal["rgb", "bgr"] = "rgb"  # channel order the model was trained on
    resize: Literal["area", "linear"] = "area"  # interpolation when scaling frames to the input size
    input_range: Annotated[list[float], Field(min_length=2, max_length=2)] = [0.0, 1.0]  # for pixels 0, 255
    output_activation: Literal["none", "softmax"] = "none"  # "softmax" if the model outputs logits
    task: Literal["classification", "detection"] = "classification"
    output: Annotated[int, Field(ge=0)] = 0  # classification: which output holds the class scores
    detection: DetectionSettings = DetectionSettings()  # detection: which output is which
    queue_frames: Annotated[int, Field(ge=1, le=100)] = 2  # frames waiting for inference; the oldest drop
    # p99 frame latency (ms) above this is reported as a health insight; the line still runs
    latency_budget_ms: Annotated[float, Field(gt=0)] = 100.0
    camera: CameraSettings
    policy: dict[str, ClassPolicySettings] = {}
    evidence: EvidenceSettings = EvidenceSettings()

    @model_validator(mode="after")
    def _policy_names_labels(self) -> QcSettings:
        if unknown := sorted(set(self.policy) - set(self.labels)):
            raise ValueError(f"policy for {unknown[0]!r}, which is not one of the labels {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be distinct")
        return self
