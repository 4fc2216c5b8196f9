"""The QC pipeline: frames inspected, defects, latency (with its histogram), the camera, the inference
backend, and the reject images kept as evidence."""

from __future__ import annotations

from typing import Annotated

from appliance.records import Severity
from appliance.status.metric import MS, Metric
from appliance.status.section import Section
from appliance.status.service import ServiceStatus, service_kind

QC_LATENCY = Metric(
    "appliance_qc_latency_seconds", "Time from a frame in memory to its decision recorded.", MS
)


class Percentiles(Section):
    p50: float | None
    p99: float | None


class LatencyHistogram(Section):
    """Per-bucket counts (not cumulative): counts[i] is the frames above le_ms[i - 1] and at most le_ms[i];
    the last count, one more than le_ms has bounds, is the frames above the last bound; `count` is their
    sum."""

    le_ms: list[float]
    counts: list[int]
    sum_ms: float
    count: int


class Detection(Section):
    label: str
    score: float
    box: list[float]


class Reject(Section):
    """A defect whose frame was kept: its image and thumbnail are under /evidence/."""

    ts: float
    label: str
    score: float
    frame: int
    thumbnail: str | None
    image: str
    severity: Severity


class CameraStatus(Section):
    state: str
    frames: int
    dropped: Annotated[
        int, Metric("appliance_qc_camera_dropped_frames_total", "Frames dropped while inference was busy.")
    ]
    reopens: Annotated[int, Metric("appliance_qc_camera_reopens_total", "Times the camera was reopened.")]
    failures: int
    queued: int
    last_error: str | None
    last_frame_age_s: Annotated[
        float | None,
        Metric("appliance_qc_camera_frame_age_seconds", "Age of the camera's latest frame."),
    ]


class InferenceStatus(Section):
    backend: str | None
    fallbacks: Annotated[
        int | None, Metric("appliance_qc_inference_fallbacks_total", "Falls to the next inference backend.")
    ]
    recoveries: Annotated[
        int | None, Metric("appliance_qc_inference_recoveries_total", "Returns to a preferred backend.")
    ]


class EvidenceStatus(Section):
    saved: Annotated[int, Metric("appliance_qc_evidence_saved_total", "Reject images saved.")]
    deleted: int
    dropped: int
    errors: int
    bytes: Annotated[int, Metric("appliance_qc_evidence_bytes", "Disk used by reject images.")]
    budget_bytes: int
    files: int


@service_kind("qc")
class QcStatus(ServiceStatus):
    frames: Annotated[int, Metric("appliance_qc_frames_total", "Camera frames inspected.")]
    fps: Annotated[float, Metric("appliance_qc_frames_per_second", "Frames inspected per second, recently.")]
    defects: Annotated[
        dict[str, int],
        Metric("appliance_qc_defects_total", "Defects confirmed by the policy, by class.", by="class"),
    ]
    latency_ms: Percentiles
    latency_histogram: LatencyHistogram
    latency_budget_ms: float
    scores: dict[str, float]
    active: list[str]
    detections: list[Detection]
    rejects: list[Reject]  # newest first
    camera: CameraStatus
    inference: InferenceStatus
    evidence: EvidenceStatus
