"""Builds small but real .tflite models in memory (no TensorFlow, no downloads) for bench and inference tests.

Each is a single-subgraph flatbuffer assembled by :class:`tflite_graph.Graph`, quantized (int8/uint8) with
the parameters :mod:`tflite_quant` chooses.

* :func:`affine_model` -- ``y = x * scale + bias`` (MUL then ADD), float32 or fully quantized int8/uint8.
* :func:`image_classifier` -- NHWC image -> MEAN over H, W -> FULLY_CONNECTED -> SOFTMAX, float32 or fully
  quantized, with fixed weights so the predicted class follows a simple colour rule
  (see :func:`classifier_weights`).
* :func:`write` -- writes model bytes to a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast, get_args

import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

from bench.models.tflite_graph import Graph, op_version
from bench.models.tflite_quant import Quant, constant_quant, quantize, range_quant

DType = Literal["float32", "int8", "uint8"]
"""Element type of a model's input and output (and, when quantized, of every activation)."""


def _check_dtype(dtype: str) -> DType:
    if dtype in get_args(DType):
        return cast(DType, dtype)
    raise ValueError(f"unsupported dtype {dtype!r}: expected 'float32', 'int8' or 'uint8'")


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
    graph = Graph()
    if dtype == "float32":
        qin = qscale = qmul = qbias = qout = None
        scale_data: npt.ArrayLike = [scale]
        bias_data: npt.ArrayLike = [bias]
    else:
        qin = range_quant(lo, hi, dtype)
        qscale, scale_q = constant_quant(scale, dtype)
        qmul = range_quant(mul_lo, mul_hi, dtype)
        qbias, bias_q = constant_quant(bias, dtype)
        qout = range_quant(min(mul_lo, 0.0) + bias, max(mul_hi, 0.0) + bias, dtype)
        scale_data, bias_data = [scale_q], [bias_q]
    x = graph.tensor("input", shape, dtype, qin)
    k = graph.tensor("scale", (1,), dtype, qscale, scale_data)
    m = graph.tensor("scaled", shape, dtype, qmul)
    b = graph.tensor("bias", (1,), dtype, qbias, bias_data)
    y = graph.tensor("output", shape, dtype, qout)
    op = schema.BuiltinOperator
    graph.op(op.MUL, op_version(op.MUL, dtype), [x, k], [m], schema.MulOptionsT())
    graph.op(op.ADD, op_version(op.ADD, dtype), [m, b], [y], schema.AddOptionsT())
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
    graph = Graph()
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
    graph.op(op.MEAN, op_version(op.MEAN, dtype), [x, axes], [pooled], schema.ReducerOptionsT(keepDims=False))
    fc_version = op_version(op.FULLY_CONNECTED, dtype)
    graph.op(op.FULLY_CONNECTED, fc_version, [pooled, w, b], [logits], schema.FullyConnectedOptionsT())
    graph.op(op.SOFTMAX, op_version(op.SOFTMAX, dtype), [logits], [y], schema.SoftmaxOptionsT(beta=1.0))
    return graph.finish(
        [x], [y], f"image classifier {height}x{width}x{channels} -> {classes} classes ({dtype})"
    )


def write(path: str | Path, data: bytes) -> Path:
    """Writes model bytes to ``path`` (creating parent directories); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target
