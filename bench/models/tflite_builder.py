"""Builds small but real .tflite models in memory (no TensorFlow, no downloads) for bench and inference tests.

The models are written with the TFLite flatbuffer schema's object API shipped in ``ai_edge_litert``
(``schema_py_generated``) and ``flatbuffers.Builder``: file identifier ``TFL3``, schema version 3, one
subgraph, a ``serving_default`` signature, and constant buffers 16-byte aligned like the converter's.

* :func:`affine_model` -- ``y = x * scale + bias`` (MUL then ADD), float32 or fully quantized int8/uint8.
* :func:`image_classifier` -- NHWC image -> MEAN over H, W -> FULLY_CONNECTED -> SOFTMAX, float32 or fully
  quantized, with fixed weights so the predicted class follows a simple colour rule
  (see :func:`classifier_weights`).
* :func:`write` -- writes model bytes to a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

import flatbuffers
import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

DType = Literal["float32", "int8", "uint8"]
"""Element type of a model's input and output (and, when quantized, of every activation)."""

FILE_IDENTIFIER: Final = b"TFL3"
SCHEMA_VERSION: Final = 3
SIGNATURE_KEY: Final = "serving_default"

_BUFFER_ALIGNMENT: Final = 16
_QUANT_LIMITS: Final[dict[str, tuple[int, int]]] = {"int8": (-128, 127), "uint8": (0, 255)}
_TENSOR_TYPES: Final[dict[str, int]] = {
    "float32": schema.TensorType.FLOAT32,
    "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8,
    "int32": schema.TensorType.INT32,
}
_NUMPY_TYPES: Final[dict[str, type[np.generic]]] = {
    "float32": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "int32": np.int32,
}


@dataclass(frozen=True)
class Quant:
    """Per-tensor affine quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def to_schema(self) -> Any:
        return schema.QuantizationParametersT(scale=[self.scale], zeroPoint=[self.zero_point])


@dataclass(frozen=True)
class ChannelQuant:
    """Per-channel symmetric quantization along ``axis``: ``real = scales[c] * q`` (zero points all 0)."""

    scales: tuple[float, ...]
    axis: int

    def to_schema(self) -> Any:
        return schema.QuantizationParametersT(
            scale=list(self.scales), zeroPoint=[0] * len(self.scales), quantizedDimension=self.axis
        )


def _check_dtype(dtype: str) -> DType:
    if dtype in get_args(DType):
        return cast(DType, dtype)
    raise ValueError(f"unsupported dtype {dtype!r}: expected 'float32', 'int8' or 'uint8'")


def range_quant(lo: float, hi: float, dtype: str) -> Quant:
    """Asymmetric quantization covering ``[lo, hi]`` (widened to include 0, as TFLite needs) in ``dtype``."""
    qmin, qmax = _QUANT_LIMITS[dtype]
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0.0:
        hi = lo + 1.0
    scale = float(np.float32((hi - lo) / (qmax - qmin)))
    zero_point = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return Quant(scale, zero_point)


def _constant_quant(value: float, dtype: str) -> tuple[Quant, int]:
    """A quantization that holds the single constant ``value`` exactly, and the quantized value."""
    if value == 0.0:
        return Quant(1.0, 0), 0
    if dtype == "int8":  # symmetric, zero point 0, value at +-127
        return Quant(abs(value) / 127.0, 0), 127 if value > 0 else -127
    # uint8: zero point at the end of the range opposite the value
    scale = abs(value) / 255.0
    return (Quant(scale, 0), 255) if value > 0 else (Quant(scale, 255), 0)


def quantize(values: npt.ArrayLike, quant: Quant, dtype: str) -> npt.NDArray[Any]:
    """Quantizes real ``values`` to ``dtype`` with ``quant`` (round half to even, saturating)."""
    qmin, qmax = _QUANT_LIMITS[dtype] if dtype in _QUANT_LIMITS else (-(2**31), 2**31 - 1)
    q = np.round(np.asarray(values, dtype=np.float64) / quant.scale) + quant.zero_point
    return np.clip(q, qmin, qmax).astype(_NUMPY_TYPES[dtype])


class _AlignedBuffer:
    """Stands in for ``schema.BufferT`` in ``ModelT.buffers``; packs its data 16-byte aligned."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def Pack(self, builder: Any) -> int:  # the name the object API calls
        vector = None
        if self.data:
            builder.Prep(_BUFFER_ALIGNMENT, len(self.data))
            vector = builder.CreateNumpyVector(np.frombuffer(self.data, dtype=np.uint8))
        schema.BufferStart(builder)
        if vector is not None:
            schema.BufferAddData(builder, vector)
        return int(schema.BufferEnd(builder))


_OPTIONS: Final[dict[int, int]] = {
    schema.BuiltinOperator.ADD: schema.BuiltinOptions.AddOptions,
    schema.BuiltinOperator.MUL: schema.BuiltinOptions.MulOptions,
    schema.BuiltinOperator.MEAN: schema.BuiltinOptions.ReducerOptions,
    schema.BuiltinOperator.FULLY_CONNECTED: schema.BuiltinOptions.FullyConnectedOptions,
    schema.BuiltinOperator.SOFTMAX: schema.BuiltinOptions.SoftmaxOptions,
    schema.BuiltinOperator.CONV_2D: schema.BuiltinOptions.Conv2DOptions,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D: schema.BuiltinOptions.DepthwiseConv2DOptions,
    schema.BuiltinOperator.AVERAGE_POOL_2D: schema.BuiltinOptions.Pool2DOptions,
}


def _op_version(op: int, dtype: str) -> int:
    """The operator version the converter gives these ops for ``dtype`` (all are in the builtin resolver)."""
    if dtype != "int8":
        return 1
    if op in (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D):
        return 3
    return 4 if op == schema.BuiltinOperator.FULLY_CONNECTED else 2


class _Graph:
    """Accumulates tensors, constant buffers and operators of a single-subgraph model."""

    def __init__(self) -> None:
        self.tensors: list[Any] = []
        self.buffers: list[_AlignedBuffer] = [_AlignedBuffer()]  # buffer 0: the empty sentinel
        self.opcodes: list[Any] = []
        self.opcode_index: dict[tuple[int, int], int] = {}
        self.operators: list[Any] = []

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: str,
        quant: Quant | ChannelQuant | None = None,
        data: npt.ArrayLike | None = None,
    ) -> int:
        """Adds a tensor (a constant when ``data`` is given, already in ``dtype``); returns its index."""
        buffer = 0
        if data is not None:
            array = np.ascontiguousarray(data, dtype=_NUMPY_TYPES[dtype])
            if array.size != int(np.prod(shape)):
                raise ValueError(f"constant {name!r}: {array.size} values for shape {shape}")
            self.buffers.append(_AlignedBuffer(array.astype(array.dtype.newbyteorder("<")).tobytes()))
            buffer = len(self.buffers) - 1
        tensor = schema.TensorT(
            shape=list(shape),
            type=_TENSOR_TYPES[dtype],
            buffer=buffer,
            name=name,
            quantization=quant.to_schema() if quant is not None else None,
        )
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def op(self, code: int, version: int, inputs: list[int], outputs: list[int], options: Any) -> None:
        key = (code, version)
        if key not in self.opcode_index:
            self.opcode_index[key] = len(self.opcodes)
            self.opcodes.append(
                schema.OperatorCodeT(
                    deprecatedBuiltinCode=min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES),
                    builtinCode=code,
                    version=version,
                )
            )
        self.operators.append(
            schema.OperatorT(
                opcodeIndex=self.opcode_index[key],
                inputs=inputs,
                outputs=outputs,
                builtinOptionsType=_OPTIONS[code],
                builtinOptions=options,
            )
        )

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        def tensor_map(index: int) -> Any:
            return schema.TensorMapT(name=self.tensors[index].name, tensorIndex=index)

        subgraph = schema.SubGraphT(
            tensors=self.tensors, inputs=inputs, outputs=outputs, operators=self.operators, name="main"
        )
        signature = schema.SignatureDefT(
            inputs=[tensor_map(i) for i in inputs],
            outputs=[tensor_map(i) for i in outputs],
            signatureKey=SIGNATURE_KEY,
            subgraphIndex=0,
        )
        model = schema.ModelT(
            version=SCHEMA_VERSION,
            operatorCodes=self.opcodes,
            subgraphs=[subgraph],
            description=description,
            buffers=self.buffers,
            signatureDefs=[signature],
        )
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
        return bytes(builder.Output())


def affine_model(
    shape: tuple[int, ...] = (1, 4),
    scale: float = 2.0,
    bias: float = 1.0,
    dtype: DType = "float32",
    input_range: tuple[float, float] = (-1.0, 1.0),
) -> bytes:
    """``output = input * scale + bias``, elementwise: MUL by a constant, then ADD a constant.

    Input and output are ``shape`` and ``dtype``; the constants have shape ``[1]`` and broadcast.
    For int8/uint8 the model is fully quantized: the input covers ``input_range`` (widened to include 0),
    each constant gets a quantization that holds its value exactly (int8: symmetric, +-127; uint8: zero
    point 0 or 255), and the MUL result and the output cover the exact image of the input range, so the
    dequantized output is ``dequantized_input * scale + bias`` within about one output step.
    """
    dtype = _check_dtype(dtype)
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"shape must have at least one dimension, all positive: {shape}")
    lo, hi = input_range
    if not lo < hi:
        raise ValueError(f"input_range must be (low, high) with low < high: {input_range}")
    mul_lo, mul_hi = sorted((lo * scale, hi * scale))
    graph = _Graph()
    if dtype == "float32":
        qin = qscale = qmul = qbias = qout = None
        scale_data: npt.ArrayLike = [scale]
        bias_data: npt.ArrayLike = [bias]
    else:
        qin = range_quant(lo, hi, dtype)
        qscale, scale_q = _constant_quant(scale, dtype)
        qmul = range_quant(mul_lo, mul_hi, dtype)
        qbias, bias_q = _constant_quant(bias, dtype)
        qout = range_quant(min(mul_lo, 0.0) + bias, max(mul_hi, 0.0) + bias, dtype)
        scale_data, bias_data = [scale_q], [bias_q]
    x = graph.tensor("input", shape, dtype, qin)
    k = graph.tensor("scale", (1,), dtype, qscale, scale_data)
    m = graph.tensor("scaled", shape, dtype, qmul)
    b = graph.tensor("bias", (1,), dtype, qbias, bias_data)
    y = graph.tensor("output", shape, dtype, qout)
    op = schema.BuiltinOperator
    graph.op(op.MUL, _op_version(op.MUL, dtype), [x, k], [m], schema.MulOptionsT())
    graph.op(op.ADD, _op_version(op.ADD, dtype), [m, b], [y], schema.AddOptionsT())
    return graph.finish([x], [y], f"affine: output = input * {scale} + {bias} ({dtype})")


def classifier_weights(
    channels: int, classes: int, gain: float = 8.0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The fixed FULLY_CONNECTED weights ``[classes, channels]`` and bias ``[classes]`` of the classifier.

    With ``m`` the per-channel mean of the image (real values in [0, 1]), class ``i`` looks at channel
    ``c = i % channels`` with sign ``s = +1`` if ``(i // channels)`` is even, else ``-1``::

        logit_i = gain * s * (m[c] - ref_c)

    where ``ref_c`` is the mean of the *other* channels (or 0.5, mid-grey, for a single channel). So for
    RGB with 3 classes the winner is the most dominant colour (red -> 0, green -> 1, blue -> 2); with 6
    classes, classes 3..5 are "least red/green/blue" (e.g. yellow -> 5); for one channel and 2 classes,
    bright -> 0 and dark -> 1. Classes ``i`` and ``i + 2 * channels`` have identical weights (ties go to
    the lower index).
    """
    if channels < 1 or classes < 1:
        raise ValueError(f"channels and classes must be positive: {channels}, {classes}")
    weights = np.zeros((classes, channels), dtype=np.float64)
    bias = np.zeros(classes, dtype=np.float64)
    for i in range(classes):
        c, sign = i % channels, (1.0 if (i // channels) % 2 == 0 else -1.0)
        if channels == 1:
            weights[i, 0] = sign * gain
            bias[i] = -sign * gain * 0.5
        else:
            weights[i, :] = -sign * gain / (channels - 1)
            weights[i, c] = sign * gain
    return weights.astype(np.float32), bias.astype(np.float32)


def image_classifier(
    height: int, width: int, channels: int, classes: int, dtype: DType = "float32", gain: float = 8.0
) -> bytes:
    """An image classifier: ``[1, height, width, channels]`` -> ``[1, classes]`` probabilities.

    MEAN over axes 1 and 2 -> FULLY_CONNECTED with :func:`classifier_weights` -> SOFTMAX (beta 1).
    Pixel values are read as reals in [0, 1]: float32 input is taken as is; uint8 input is quantized
    with scale 1/255, zero point 0 (so raw 0..255 pixels map to 0..1), int8 with scale 1/255, zero point
    -128 (raw = pixel - 128). The mean keeps the input quantization; weights are symmetric (int8: zero
    point 0; uint8: zero point 128) with scale ``max|w| / 127``; the bias is int32 with scale
    ``input_scale * weight_scale``; the logits cover their exact reachable range; the softmax output is
    scale 1/256 with zero point 0 (uint8) or -128 (int8), as TFLite requires.
    """
    dtype = _check_dtype(dtype)
    if min(height, width, channels, classes) < 1:
        raise ValueError(f"all dimensions must be positive: {height}x{width}x{channels}, {classes} classes")
    weights, bias = classifier_weights(channels, classes, gain)
    logit_lo = float(np.min(np.minimum(weights, 0.0).sum(axis=1) + bias))
    logit_hi = float(np.max(np.maximum(weights, 0.0).sum(axis=1) + bias))
    graph = _Graph()
    if dtype == "float32":
        qin = qw = qb = qlogits = qout = None
        weight_data: npt.ArrayLike = weights
        bias_data: npt.ArrayLike = bias
        bias_dtype = "float32"
    else:
        qin = Quant(1.0 / 255.0, 0 if dtype == "uint8" else -128)
        w_scale = float(np.max(np.abs(weights))) / 127.0 or 1.0
        qw = Quant(w_scale, 128 if dtype == "uint8" else 0)
        qb = Quant(float(np.float32(qin.scale) * np.float32(qw.scale)), 0)
        qlogits = range_quant(logit_lo, logit_hi, dtype)
        qout = Quant(1.0 / 256.0, 0 if dtype == "uint8" else -128)
        weight_data = quantize(weights, qw, dtype)
        bias_data = quantize(bias, qb, "int32")
        bias_dtype = "int32"
    x = graph.tensor("input", (1, height, width, channels), dtype, qin)
    axes = graph.tensor("mean_axes", (2,), "int32", None, [1, 2])
    pooled = graph.tensor("mean_colour", (1, channels), dtype, qin)
    w = graph.tensor("weights", (classes, channels), dtype, qw, weight_data)
    b = graph.tensor("bias", (classes,), bias_dtype, qb, bias_data)
    logits = graph.tensor("logits", (1, classes), dtype, qlogits)
    y = graph.tensor("output", (1, classes), dtype, qout)
    op = schema.BuiltinOperator
    graph.op(
        op.MEAN, _op_version(op.MEAN, dtype), [x, axes], [pooled], schema.ReducerOptionsT(keepDims=False)
    )
    fc_version = _op_version(op.FULLY_CONNECTED, dtype)
    graph.op(op.FULLY_CONNECTED, fc_version, [pooled, w, b], [logits], schema.FullyConnectedOptionsT())
    graph.op(op.SOFTMAX, _op_version(op.SOFTMAX, dtype), [logits], [y], schema.SoftmaxOptionsT(beta=1.0))
    return graph.finish(
        [x], [y], f"image classifier {height}x{width}x{channels} -> {classes} classes ({dtype})"
    )


def write(path: str | Path, data: bytes) -> Path:
    """Writes model bytes to ``path`` (creating parent directories); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target
