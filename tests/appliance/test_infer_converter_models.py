"""`appliance infer` on models from TensorFlow's real converter gives what a direct LiteRT call gives.

The fixtures in tests/fixtures/models (made by `python -m bench.models.converter_fixtures`) all take real
values 0..1. Each runs through `python -m appliance infer --range 0,1 --json` on seeded camera-like PNGs,
and every dequantized output is compared with a direct `ai_edge_litert` interpreter call on the same image,
preprocessed as appliance/qc/model.py documents it: resize the BGR frame to the input size with
`cv2.INTER_AREA`, convert to RGB (or gray for one channel), real = p / 255, quantize with the input's
scale and zero point (round, clip) for int8/uint8 inputs; outputs dequantized as (q - zero point) * scale.
Float outputs must agree within 1e-5; quantized outputs exactly (the same input integers through the same
integer kernels give the same output integers).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from ai_edge_litert.interpreter import Interpreter

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "fixtures" / "models"
FIXTURES = [
    "float_rgb.tflite",
    "int8_rgb.tflite",
    "uint8_io.tflite",
    "gray_float.tflite",
    "two_outputs.tflite",
]
FLOAT_TOLERANCE = 1e-5


def camera_images(directory: Path, count: int = 3, seed: int = 11) -> list[Path]:
    """Seeded 320x240 BGR PNGs with structure: a colour gradient, filled shapes, a dark line and noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:240, 0:320].astype(np.float32)
    paths = []
    for number in range(count):
        corners = rng.uniform(0, 255, (2, 3)).astype(np.float32)
        mix = (xs / 319.0 * 0.7 + ys / 239.0 * 0.3)[..., None]
        frame = corners[0] * (1 - mix) + corners[1] * mix
        frame += rng.normal(0.0, 12.0, frame.shape).astype(np.float32)
        image = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        for _ in range(4):
            x, y = int(rng.integers(0, 280)), int(rng.integers(0, 200))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(
                image, (x, y), (x + int(rng.integers(10, 80)), y + int(rng.integers(10, 60))), colour, -1
            )
        centre = (int(rng.integers(40, 280)), int(rng.integers(40, 200)))
        cv2.circle(
            image, centre, int(rng.integers(8, 40)), tuple(int(c) for c in rng.integers(0, 256, 3)), -1
        )
        cv2.line(image, (0, int(rng.integers(0, 240))), (319, int(rng.integers(0, 240))), (10, 10, 10), 3)
        path = directory / f"frame_{number}.png"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def appliance_infer(model: Path, images: list[Path]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "appliance", "infer", "--model", str(model)]
    command += [str(p) for p in images] + ["--json", "--range", "0,1", "--color", "rgb"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def documented_input(frame: npt.NDArray[np.uint8], detail: dict[str, Any]) -> npt.NDArray[Any]:
    """The input tensor as appliance/qc/model.py documents it: gray first for one channel, resize
    (INTER_AREA), RGB after the resize for three, real = p / 255 for range 0..1, quantize for int8/uint8."""
    _, height, width, channels = (int(x) for x in detail["shape"])
    if channels == 1:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        pixels = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)[..., None]
    else:
        resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        pixels = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    real = pixels.astype(np.float64) / 255.0
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return real[None].astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    stored = np.clip(np.rint(real / scale + zero_point), info.min, info.max)
    quantized: npt.NDArray[Any] = stored.astype(dtype)
    return quantized[None]


def direct_outputs(model: Path, frame: npt.NDArray[np.uint8]) -> list[tuple[str, npt.NDArray[np.float64]]]:
    """Every output of a direct LiteRT call, dequantized as (q - zero point) * scale, in model order."""
    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], documented_input(frame, detail))
    interpreter.invoke()
    outputs = []
    for out in interpreter.get_output_details():
        raw = interpreter.get_tensor(out["index"])
        scale, zero_point = out["quantization"]
        values = raw.astype(np.float64) if not scale else (raw.astype(np.float64) - zero_point) * scale
        outputs.append((str(out["name"]), values))
    return outputs


def output_details(model: Path) -> list[dict[str, Any]]:
    interpreter = Interpreter(model_path=str(model))
    return list(interpreter.get_output_details())


@pytest.mark.parametrize("name", FIXTURES)
def test_infer_matches_a_direct_litert_call(tmp_path: Path, name: str) -> None:
    model = MODELS / name
    images = camera_images(tmp_path)
    result = appliance_infer(model, images)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    interpreter = Interpreter(model_path=str(model))
    detail = interpreter.get_input_details()[0]
    assert report["input"]["shape"] == [int(x) for x in detail["shape"]]
    assert report["input"]["dtype"] == np.dtype(detail["dtype"]).name
    assert report["input"]["quantization"] == pytest.approx(list(detail["quantization"]))
    assert len(report["results"]) == len(images)
    quantized = [bool(d["quantization"][0]) for d in output_details(model)]
    for path, result_for_image in zip(images, report["results"], strict=True):
        assert result_for_image["image"] == str(path)
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert frame is not None
        expected = direct_outputs(model, frame.astype(np.uint8))
        got = result_for_image["outputs"]
        assert [o["name"] for o in got] == [n for n, _ in expected]
        for output, (out_name, values), is_quantized in zip(got, expected, quantized, strict=True):
            assert output["shape"] == list(values.shape), out_name
            ours = np.asarray(output["values"], np.float64)
            if is_quantized:  # same input integers, same integer kernels: the same output integers
                np.testing.assert_array_equal(
                    ours, values.reshape(-1), err_msg=f"{name} {path.name} {out_name}"
                )
            else:
                np.testing.assert_allclose(
                    ours,
                    values.reshape(-1),
                    rtol=0,
                    atol=FLOAT_TOLERANCE,
                    err_msg=f"{name} {path.name} {out_name}",
                )


def test_two_output_model_lists_both_outputs_with_their_shapes(tmp_path: Path) -> None:
    model = MODELS / "two_outputs.tflite"
    result = appliance_infer(model, camera_images(tmp_path, count=1))
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["results"][0]["outputs"]
    details = output_details(model)
    assert len(outputs) == len(details) == 2
    assert [o["shape"] for o in outputs] == [[int(x) for x in d["shape"]] for d in details]
    assert sorted(o["shape"] for o in outputs) == [[1, 2], [1, 4]]
    for output in outputs:
        assert len(output["values"]) == int(np.prod(output["shape"]))
    scores = next(o for o in outputs if o["shape"] == [1, 4])
    assert sum(scores["values"]) == pytest.approx(1.0, abs=1e-5)  # the softmax head


def test_infer_on_a_file_that_is_not_a_model_exits_2(tmp_path: Path) -> None:
    fake = tmp_path / "not_a_model.tflite"
    fake.write_bytes(b"this is not a flatbuffer, just some text\n" * 20)
    result = appliance_infer(fake, camera_images(tmp_path, count=1))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"appliance infer: {fake}:" in result.stderr
    assert "cannot load" in result.stderr


def test_infer_on_a_file_that_is_not_an_image_exits_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    result = appliance_infer(MODELS / "float_rgb.tflite", [text])
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"appliance infer: {text}: not an image OpenCV can read" in result.stderr
