"""Builds tiny seeded Keras image models and converts them with TensorFlow's real TFLiteConverter.

Run by hand from the repository root, with TensorFlow (not a project dependency, so it is imported only
inside functions here):

    python -m bench.models.converter_fixtures --out tests/fixtures/models

Every model takes real values 0..1 (pixel p as p / 255); the weights are random but seeded, nothing is
trained. It writes float_rgb.tflite, int8_rgb.tflite, uint8_io.tflite, gray_float.tflite,
two_outputs.tflite and a README.md that lists each file's tensors as LiteRT reads them back.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

COMMAND = "python -m bench.models.converter_fixtures --out tests/fixtures/models"
SEED = 20240611
CALIBRATION_IMAGES = 64


@dataclass(frozen=True, slots=True)
class Fixture:
    file: str
    height: int
    width: int
    channels: int
    quantize: str  # "float", "int8" or "uint8": the type of the input and output tensors
    heads: tuple[tuple[str, int, str], ...]  # (output name, units, activation)
    purpose: str


FIXTURES = (
    Fixture("float_rgb.tflite", 64, 64, 3, "float", (("scores", 5, "softmax"),), "float colour classifier"),
    Fixture(
        "int8_rgb.tflite", 64, 64, 3, "int8", (("scores", 5, "softmax"),), "full-integer, int8 in and out"
    ),
    Fixture(
        "uint8_io.tflite", 64, 64, 3, "uint8", (("scores", 5, "softmax"),), "full-integer, uint8 in and out"
    ),
    Fixture("gray_float.tflite", 48, 48, 1, "float", (("scores", 3, "softmax"),), "float one-channel model"),
    Fixture(
        "two_outputs.tflite",
        32,
        32,
        3,
        "float",
        (("class_scores", 4, "softmax"), ("regression", 2, "linear")),
        "float, class scores and a regression head",
    ),
)


def build_model(tf: Any, fixture: Fixture, seed: int) -> Any:
    """Two strided 3x3 convolutions, global mean and max pooling, a dense head per output. The input is
    real 0..1 values (no Rescaling layer), so the box must map pixel p to p / 255."""
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    inputs = tf.keras.Input((fixture.height, fixture.width, fixture.channels), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    outputs = {name: layers.Dense(units, activation=act, name=name)(x) for name, units, act in fixture.heads}
    return tf.keras.Model(inputs, outputs, name=fixture.file.removesuffix(".tflite"))


def calibration_images(fixture: Fixture, seed: int) -> npt.NDArray[np.float32]:
    """Seeded images in 0..1: smooth gradients plus noise and a bright square, so the activations spread.
    The first holds exactly 0 and 1, so the input quantization calibrates to the full 0..1 range."""
    rng = np.random.default_rng(seed)
    shape = (CALIBRATION_IMAGES, fixture.height, fixture.width, fixture.channels)
    ys = np.linspace(0.0, 1.0, fixture.height, dtype=np.float32)[None, :, None, None]
    xs = np.linspace(0.0, 1.0, fixture.width, dtype=np.float32)[None, None, :, None]
    weights = rng.uniform(-1.0, 1.0, (CALIBRATION_IMAGES, 1, 1, fixture.channels, 2)).astype(np.float32)
    images = 0.5 + 0.4 * (weights[..., 0] * (ys - 0.5) + weights[..., 1] * (xs - 0.5))
    images = images + rng.normal(0.0, 0.15, shape).astype(np.float32)
    for image in images:
        top, left = rng.integers(0, fixture.height // 2), rng.integers(0, fixture.width // 2)
        image[top : top + fixture.height // 4, left : left + fixture.width // 4] = rng.uniform(0.6, 1.0)
    clipped: npt.NDArray[np.float32] = np.clip(images, 0.0, 1.0).astype(np.float32)
    clipped[0, 0, 0], clipped[0, -1, -1] = 0.0, 1.0
    return clipped


def convert(tf: Any, model: Any, fixture: Fixture, seed: int) -> bytes:
    """The model through a SavedModel (whose loader freezes the weights into constants) and the converter."""
    archive = tf.keras.export.ExportArchive()
    archive.track(model)
    signature = tf.TensorSpec((1, fixture.height, fixture.width, fixture.channels), tf.float32, name="image")
    endpoint: Callable[[Any], dict[str, Any]] = lambda image: dict(model(image, training=False))  # noqa: E731
    archive.add_endpoint("serving_default", endpoint, input_signature=[signature])
    saved = tempfile.mkdtemp(prefix="converter_fixture_")
    try:
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if fixture.quantize != "float":
            images = calibration_images(fixture, seed + 1)

            def representative() -> Iterator[list[npt.NDArray[np.float32]]]:
                for image in images:
                    yield [image[None]]

            io_type = {"int8": tf.int8, "uint8": tf.uint8}[fixture.quantize]
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type
        data: bytes = converter.convert()
    finally:
        shutil.rmtree(saved, ignore_errors=True)
    return data


def describe(tf: Any, data: bytes) -> tuple[list[str], list[str]]:
    """The input and output tensors as the TFLite interpreter reads them from the converted bytes."""
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated; it reads fine
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=data)
    runner = interpreter.get_signature_runner()
    keys = {
        int(d["index"]): key for key, d in (runner.get_input_details() | runner.get_output_details()).items()
    }

    def line(detail: dict[str, Any]) -> str:
        shape = [int(x) for x in detail["shape"]]
        dtype = np.dtype(detail["dtype"]).name
        scale, zero_point = detail["quantization"]
        quantization = f"scale {scale:.9g}, zero point {zero_point}" if scale else "not quantized"
        key = keys.get(int(detail["index"]), "?")
        return f"`{detail['name']}` (signature `{key}`) {shape} {dtype}, {quantization}"

    return (
        [line(d) for d in interpreter.get_input_details()],
        [line(d) for d in interpreter.get_output_details()],
    )


def readme(tf_version: str, rows: list[tuple[Fixture, bytes, list[str], list[str]]]) -> str:
    lines = [
        "# Converter test models",
        "",
        "Tiny Keras image models with random but seeded weights (nothing trained), converted by TensorFlow's",
        "real `tf.lite.TFLiteConverter`, so the appliance is tested on the tensors a real converter writes.",
        "`tests/appliance/test_infer_converter_models.py` runs `appliance infer` on them and compares every",
        "output with a direct LiteRT call on the same, documented preprocessing.",
        "",
        f"Made with TensorFlow {tf_version} by, from the repository root:",
        "",
        f"    {COMMAND}",
        "",
        f"(`bench/models/converter_fixtures.py`, seed {SEED}.) Every model is a Keras model taking real",
        "values **0..1**: pixel p is p / 255, i.e. `appliance infer --range 0,1` (the default) with",
        "`--color rgb` (the default; the gray model takes one channel).",
        "The quantized models were calibrated on seeded images in 0..1 (the first holding exactly 0 and 1),",
        "so the converter chose an input scale of 1/255: zero point -128 for int8, 0 for uint8. Softmax",
        "outputs are quantized with scale 1/256 (real = (q - zero point) * scale).",
        "",
        "Outputs are listed in the model's own order, as LiteRT returns them, with the SavedModel signature",
        "key each one carries. The converter put the regression head of `two_outputs.tflite` first.",
        "",
        "| file | bytes | made as | input | expected input range | outputs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for fixture, data, inputs, outputs in rows:
        made = fixture.purpose + (
            ""
            if fixture.quantize == "float"
            else f"; `inference_input_type/output_type = tf.{fixture.quantize}`"
        )
        lines.append(
            f"| `{fixture.file}` | {len(data)} | {made} | {'; '.join(inputs)} | 0..1 (pixel / 255) "
            f"| {'<br>'.join(outputs)} |"
        )
    lines += ["", "SHA-256:", ""]
    lines += [f"- `{fixture.file}`: `{hashlib.sha256(data).hexdigest()}`" for fixture, data, _, _ in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/models"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # only here, and untyped: TensorFlow is needed to make the fixtures, never to run them
    tf: Any = importlib.import_module("tensorflow")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[Fixture, bytes, list[str], list[str]]] = []
    for number, fixture in enumerate(FIXTURES):
        seed = SEED + 100 * number
        data = convert(tf, build_model(tf, fixture, seed), fixture, seed)
        (args.out / fixture.file).write_bytes(data)
        inputs, outputs = describe(tf, data)
        rows.append((fixture, data, inputs, outputs))
        print(
            f"{fixture.file}: {len(data)} bytes; in {'; '.join(inputs)}; out {'; '.join(outputs)}", flush=True
        )
    (args.out / "README.md").write_text(readme(str(tf.__version__), rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
