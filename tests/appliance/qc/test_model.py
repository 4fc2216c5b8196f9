"""QC models on real LiteRT: preprocessing written into the input tensor gives exactly what a direct
interpreter call with the documented preprocessing gives, for float, int8 and uint8, colour and gray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from appliance.qc.model import InputSpec, ModelError, QcModel
from bench.models.tflite_builder import affine_model, image_classifier, write
from hal.inference import InferenceEngine
from hal.plan import BackendKind, PlannedBackend, plan_inference
from hal.system import Cpu

PLAN = plan_inference(Cpu("x86_64", "test", 2, ()), 4096, [])


def expected_input(
    frame: np.ndarray, detail: dict[str, Any], color: str, low: float, high: float
) -> np.ndarray:
    _, height, width, channels = detail["shape"]
    if channels == 1:
        pixels = cv2.resize(
            cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (width, height), interpolation=cv2.INTER_AREA
        )[..., None]
    else:
        pixels = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        if color == "rgb":
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    real = low + pixels.astype(np.float32) * np.float32((high - low) / 255.0)
    if detail["dtype"] == np.float32:
        return real[None].astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    quantized: np.ndarray = np.clip(np.rint(real / scale + zero_point), info.min, info.max).astype(
        detail["dtype"]
    )
    return quantized[None]


@pytest.mark.parametrize(
    ("dtype", "shape", "color", "input_range"),
    [
        ("float32", (64, 48, 3), "rgb", (0.0, 1.0)),
        ("float32", (32, 32, 3), "bgr", (-1.0, 1.0)),
        ("uint8", (64, 64, 3), "rgb", (0.0, 1.0)),
        ("uint8", (40, 56, 3), "bgr", (0.0, 1.0)),
        ("int8", (64, 64, 3), "rgb", (0.0, 1.0)),
        ("int8", (48, 32, 1), "rgb", (0.0, 1.0)),
        ("uint8", (30, 30, 1), "rgb", (0.0, 1.0)),
    ],
)
def test_pipeline_matches_a_direct_interpreter_call(
    tmp_path: Path, dtype: str, shape: tuple[int, int, int], color: str, input_range: tuple[float, float]
) -> None:
    height, width, channels = shape
    path = write(tmp_path / "m.tflite", image_classifier(height, width, channels, 4, dtype=dtype))  # type: ignore[arg-type]
    rng = np.random.default_rng(7)
    engine = InferenceEngine(path, PLAN)
    engine.open()
    qc = QcModel(engine, color, input_range)
    direct = Interpreter(model_path=str(path))
    direct.allocate_tensors()
    detail, out = direct.get_input_details()[0], direct.get_output_details()[0]
    try:
        for _ in range(5):
            frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            frame[:, :160] = rng.integers(0, 256, 3, dtype=np.uint8)  # a coloured half, so classes differ
            ours = qc.run(frame)[0].values
            direct.set_tensor(detail["index"], expected_input(frame, detail, color, *input_range))
            direct.invoke()
            raw = direct.get_tensor(out["index"])
            scale, zero_point = out["quantization"]
            theirs = raw.astype(np.float32) if not scale else (raw.astype(np.float32) - zero_point) * scale
            np.testing.assert_allclose(ours, theirs, atol=1e-6)
    finally:
        engine.close()
    assert qc.pre.direct == (dtype == "uint8" and input_range == (0.0, 1.0))


def test_a_model_that_is_not_for_a_camera_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = write(tmp_path / "affine.tflite", affine_model(shape=(1, 4)))
    engine = InferenceEngine(path, PLAN)
    engine.open()
    with pytest.raises(
        ModelError, match=r"shape \[1, 4\]; a camera model needs \[1, height, width, 1 or 3\]"
    ):
        QcModel(engine)
    engine.close()


def test_quantized_input_without_parameters_is_refused() -> None:
    detail = {"name": "x", "shape": [1, 8, 8, 3], "dtype": np.uint8, "quantization": (0.0, 0)}
    with pytest.raises(ModelError, match="without quantization parameters"):
        InputSpec.of(detail)


def test_preprocessing_survives_a_fallback_to_the_next_backend(tmp_path: Path) -> None:
    from hal.inference.mock import MockAccelerator

    path = write(tmp_path / "m.tflite", image_classifier(32, 32, 3, 3, dtype="uint8"))
    device = MockAccelerator()
    plan = plan_inference(Cpu("x86_64", "t", 2, ()), 4096, [])
    plan = type(plan)(
        (PlannedBackend(BackendKind.GPU, "mock gpu", "libmock.so"), *plan.backends),
        plan.variant,
        plan.variant_reason,
    )
    engine = InferenceEngine(path, plan, loader=device.loader(), probe_interval_s=3600)
    engine.open()
    qc = QcModel(engine)
    frame = np.full((120, 160, 3), (0, 0, 200), np.uint8)
    before = qc.run(frame)[0].values
    device.unplug()
    after = qc.run(frame)[0].values
    engine.close()
    assert engine.counts["fallbacks"] == 1
    np.testing.assert_allclose(before, after)
