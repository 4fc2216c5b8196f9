"""A QC model on the inference engine: preprocessing written straight into the input tensor, outputs
dequantized and read as class scores or SSD-style detections.

Preprocessing, in order: for a one-channel input convert the BGR frame to gray first; resize to the
input's height and width (`cv2.INTER_AREA` by default, the right filter for shrinking camera frames;
`resize = "linear"` for bilinear); for three channels convert to the input's colour order (RGB or BGR)
after the resize; map each pixel p in 0..255 to the real value
`low + p * (high - low) / 255` of `input_range`, and, for an int8/uint8 input, quantize it with the
input's scale and zero point. When that whole map is the identity on 8-bit pixels (uint8 input, scale
1/255, zero point 0, range 0..1, the common case) the resize writes the tensor directly.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from hal.inference import InferenceEngine


class Task(enum.StrEnum):
    CLASSIFICATION = "classification"
    DETECTION = "detection"


class ModelError(ValueError):
    """A model this box cannot use as configured; the message says what to change."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    height: int
    width: int
    channels: int
    dtype: np.dtype[Any]
    scale: float
    zero_point: int

    @classmethod
    def of(cls, detail: dict[str, Any]) -> InputSpec:
        shape = [int(x) for x in detail["shape"]]
        if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
            raise ModelError(
                f"input {detail.get('name', '')!r} has shape {shape}; a camera model needs "
                "[1, height, width, 1 or 3] (NHWC, gray or colour)"
            )
        dtype = np.dtype(detail["dtype"])
        if dtype not in (np.float32, np.int8, np.uint8):
            raise ModelError(f"input dtype {dtype} is not supported (float32, int8, uint8)")
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if dtype != np.float32 and not scale:
            raise ModelError(f"input is {dtype} without quantization parameters: cannot map pixels to it")
        return cls(shape[1], shape[2], shape[3], dtype, float(scale), int(zero_point))


@dataclass(frozen=True, slots=True)
class Output:
    """One output tensor, dequantized."""

    name: str
    values: npt.NDArray[np.float32]


class Preprocessor:
    """Turns BGR frames into the model's input, writing into the input tensor view it is given."""

    def __init__(
        self,
        spec: InputSpec,
        color: str = "rgb",
        input_range: tuple[float, float] = (0.0, 1.0),
        resize: str = "area",
    ) -> None:
        self.spec, self.color = spec, color
        self.interpolation = cv2.INTER_AREA if resize == "area" else cv2.INTER_LINEAR
        low, high = input_range
        # real = low + p * step; stored = real / scale + zero_point (quantized) or real (float)
        step = (high - low) / 255.0
        if spec.dtype == np.float32:
            self.gain, self.bias = step, low
        else:
            self.gain, self.bias = step / spec.scale, low / spec.scale + spec.zero_point
        self.direct = (
            spec.dtype == np.uint8 and math.isclose(self.gain, 1.0, rel_tol=1e-4) and abs(self.bias) < 1e-3
        )
        self._pixels = np.empty((spec.height, spec.width, spec.channels), np.uint8)
        info = np.iinfo(spec.dtype) if spec.dtype != np.float32 else None
        self._limits = (info.min, info.max) if info is not None else None

    def prepare(
        self, frame: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8] | None = None
    ) -> npt.NDArray[np.uint8]:
        """Resize and colour-convert a frame to the input's size and channels (8-bit pixels). The pipeline
        runs this in the camera's thread, so it overlaps the previous frame's inference."""
        spec = self.spec
        target = np.empty((spec.height, spec.width, spec.channels), np.uint8) if out is None else out
        size = (spec.width, spec.height)
        if spec.channels == 1:
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            cv2.resize(
                gray, size, dst=target.reshape(spec.height, spec.width), interpolation=self.interpolation
            )
        elif self.color == "rgb":
            resized = cv2.resize(frame, size, interpolation=self.interpolation)
            cv2.cvtColor(resized, cv2.COLOR_BGR2RGB, dst=target)
        else:
            cv2.resize(frame, size, dst=target, interpolation=self.interpolation)
        return target

    def write(self, pixels: npt.NDArray[np.uint8], view: np.ndarray) -> None:
        """Map prepared pixels into the input tensor: a copy, or one multiply-add (and rounding)."""
        if self.direct:
            np.copyto(view[0], pixels)
        elif self._limits is None:  # float input: one fused multiply-add into the tensor
            np.multiply(pixels, np.float32(self.gain), out=view[0], casting="unsafe")
            view[0] += np.float32(self.bias)
        else:
            real = pixels * np.float32(self.gain) + np.float32(self.bias)
            np.clip(np.rint(real), *self._limits, out=real)
            view[0] = real.astype(self.spec.dtype)

    def fill(self, frame: npt.NDArray[np.uint8], view: np.ndarray) -> None:
        """Prepare and write in one go."""
        if self.direct:
            self.prepare(frame, view[0])  # the map is the identity: the resize writes the tensor itself
        else:
            self.write(self.prepare(frame, self._pixels), view)


def dequantize(detail: dict[str, Any], values: np.ndarray) -> npt.NDArray[np.float32]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if values.dtype == np.float32 or not scale:
        return values.astype(np.float32, copy=False)
    return ((values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


class QcModel:
    """A loaded model with its preprocessing; `run(frame)` gives its dequantized outputs."""

    def __init__(
        self,
        engine: InferenceEngine,
        color: str = "rgb",
        input_range: tuple[float, float] = (0.0, 1.0),
        resize: str = "area",
    ) -> None:
        self.engine = engine
        inputs = engine.input_details()
        if len(inputs) != 1:
            raise ModelError(f"the model has {len(inputs)} inputs; a camera model has one image input")
        self.input = InputSpec.of(inputs[0])
        self.outputs = engine.output_details()
        self.pre = Preprocessor(self.input, color, input_range, resize)

    def run(
        self, frame: npt.NDArray[np.uint8], prepared: npt.NDArray[np.uint8] | None = None
    ) -> list[Output]:
        """The dequantized outputs for a frame; `prepared` is the frame already resized by `pre.prepare`."""
        if prepared is None:
            raw = self.engine.run(lambda views: self.pre.fill(frame, views[0]))
        else:
            raw = self.engine.run(lambda views: self.pre.write(prepared, views[0]))
        return [
            Output(str(d.get("name", i)), dequantize(d, v))
            for i, (d, v) in enumerate(zip(self.outputs, raw, strict=True))
        ]


def softmax(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    e = np.exp(x - x.max())
    out: npt.NDArray[np.float32] = (e / e.sum()).astype(np.float32)
    return out
