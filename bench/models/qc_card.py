"""Measures the demo QC model files with LiteRT's interpreter and writes their model card (QC_MODEL_CARD.md).

Kept apart from train_qc so that measuring needs no TensorFlow: only ai_edge_litert and numpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.models.qc_dataset import CLASSES, INPUT_SIZE


@dataclass(frozen=True)
class Result:
    """How one model file did on a labelled set."""

    size: int  # bytes
    accuracy: float
    per_class: dict[str, float]
    predictions: npt.NDArray[np.int64]
    input_spec: str  # dtype and quantization, as LiteRT reports them
    output_spec: str
    ms_per_image: float  # one thread, batch 1, on the machine that trained it


@dataclass(frozen=True)
class Facts:
    train_images: int
    train_seed: int
    epochs: int
    fresh_images: int
    fresh_seed: int
    params: int
    seconds: float
    machine: str
    command: str
    sha256: dict[str, str]


def _spec(detail: dict[str, Any]) -> str:
    dtype = np.dtype(detail["dtype"]).name
    if dtype == "float32":
        return "float32"
    scale, zero_point = detail["quantization"]
    return f"{dtype}, scale {scale:.9g}, zero point {zero_point}"


def to_input(detail: dict[str, Any], rgb: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
    """One preprocessed image (RGB uint8, 96 x 128) as the input tensor: pixel values 0..255, quantized
    with the input's own parameters when it is an integer tensor."""
    real = rgb[None].astype(np.float32)
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return real
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    quantized: npt.NDArray[Any] = np.clip(np.round(real / scale) + zero_point, info.min, info.max).astype(
        dtype
    )
    return quantized


def predict(model: bytes, images: npt.NDArray[np.uint8], threads: int = 1) -> tuple[npt.NDArray[Any], Any]:
    """Class numbers for every image, and the interpreter (for its input and output details)."""
    from ai_edge_litert.interpreter import Interpreter  # LiteRT: the runtime the box uses

    interpreter = Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    predictions = np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        interpreter.set_tensor(source["index"], to_input(source, image))
        interpreter.invoke()
        # argmax of the raw output equals argmax of the dequantized one: the scale is positive
        predictions[i] = int(np.argmax(interpreter.get_tensor(sink["index"])[0]))
    return predictions, interpreter


def evaluate(model: bytes, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]) -> Result:
    started = time.perf_counter()
    predictions, interpreter = predict(model, images)
    elapsed = time.perf_counter() - started
    per_class = {name: float(np.mean(predictions[labels == k] == k)) for k, name in enumerate(CLASSES)}
    return Result(
        size=len(model),
        accuracy=float(np.mean(predictions == labels)),
        per_class=per_class,
        predictions=predictions,
        input_spec=_spec(interpreter.get_input_details()[0]),
        output_spec=_spec(interpreter.get_output_details()[0]),
        ms_per_image=1000.0 * elapsed / max(1, len(images)),
    )


def card(facts: Facts, results: dict[str, Result]) -> str:
    """QC_MODEL_CARD.md for the files in `results` (float first, then int8)."""
    (float_name, floats), (int8_name, ints) = results.items()
    agree = float(np.mean(floats.predictions == ints.predictions))
    w, h = INPUT_SIZE
    rows = "\n".join(
        f"| {name} | {r.size} | {r.accuracy:.2%} | {r.ms_per_image:.2f} | {r.input_spec} | {r.output_spec} |"
        for name, r in results.items()
    )
    per_class = "\n".join(
        f"| {k} | `{name}` | {floats.per_class[name]:.2%} | {ints.per_class[name]:.2%} |"
        for k, name in enumerate(CLASSES)
    )
    digests = "\n".join(f"- `{name}`: sha256 `{digest}`" for name, digest in facts.sha256.items())
    return f"""# Demo QC model card

A small CNN that sorts frames of the bench's synthetic camera (`bench/camera`) into six classes. It is a
demo for the appliance's camera QC path, trained only on synthetic images: it knows nothing of real parts.

## Input

- One frame at a time, shape `[1, {h}, {w}, 3]` (NHWC: batch, height {h}, width {w}, channels), **RGB**.
- Preprocessing: take the whole camera frame (BGR, 320 x 240 from the synthetic camera), `cv2.resize` it to
  {w} x {h} with `cv2.INTER_AREA`, convert BGR to RGB. No mean or scale: the model rescales inside.
- `{float_name}`: float32 pixel values 0..255.
- `{int8_name}`: full integer quantization (int8 weights and activations) with a **uint8 input** and a
  **uint8 output**. Input scale 1.0, zero point 0 (see the table): the uint8 RGB pixels go into the tensor
  unchanged. Output: `probability = scale * (q - zero_point)`.

## Output

Softmax scores `[1, {len(CLASSES)}]` in this order (the predicted class is the argmax):

| index | class | float accuracy | int8 accuracy |
|---|---|---|---|
{per_class}

## Files and accuracy

Accuracy on **{facts.fresh_images} fresh images** (seed {facts.fresh_seed}, never used in training, balanced
across classes, each JPEG-compressed at quality 70..95 as the MJPEG camera does), measured with LiteRT's
`ai_edge_litert.interpreter.Interpreter` (batch 1, one thread; ms per image on the training machine).

| file | bytes | accuracy | ms/image | input | output |
|---|---|---|---|---|---|
{rows}

The two files agree on {agree:.2%} of the fresh images.

{digests}

## Training

- {facts.train_images} synthetic images (seed {facts.train_seed}, balanced; a tenth held out to pick the best
  of {facts.epochs} epochs), mirrored left-right at random; Adam with cosine decay; {facts.params} weights.
- Architecture: five 3x3 conv + batch norm + ReLU blocks (16, 32, 64, 64, 96 filters; 2x2 max pooling after
  the first four), global max and mean pooling concatenated, dropout 0.2, dense softmax.
- Int8 calibration: 300 training images (the first with pixels at 0 and 255 so the input range is exactly
  0..255), `TFLITE_BUILTINS_INT8` only.
- Took {facts.seconds:.0f} s (images, training, conversion) on {facts.machine}.

Reproduce (from the repository root, in a venv with `tensorflow-cpu`, `opencv-python-headless`, `numpy` and
`ai-edge-litert`; TensorFlow is not a project dependency):

    {facts.command}

`tests/bench/test_qc_model.py` checks both files on fresh images without TensorFlow.
"""
