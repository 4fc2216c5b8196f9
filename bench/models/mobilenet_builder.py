"""Builds a MobileNetV2-shaped .tflite model (random, seeded weights) as a realistic latency-benchmark load.

:func:`mobilenet_v2_like` writes the network of mobilenet_network.py (MobileNetV2's layout, its seeded
weights rescaled on a float reference) with the ops the TFLite converter emits for it: RELU6 fused into
the convolutions, ADD for the residuals. The network is meaningless as a classifier, but its parameter
count (about 3.49M at ``alpha`` 1.0 with 1000 classes), its 301M multiply-accumulates at 224x224 and its
memory traffic are MobileNetV2's.

The int8 model is fully quantized the way the converter does it: int8 input and output, every activation
per-tensor asymmetric int8 with its range calibrated by running the float network in NumPy on a seeded
random input (RELU6 outputs within [0, 6]), conv and depthwise filters per-channel symmetric int8
(quantized dimension 0 for CONV_2D ``[out, h, w, in]``, 3 for DEPTHWISE_CONV_2D ``[1, h, w, out]``), the
FULLY_CONNECTED weights per-tensor symmetric, int32 biases with ``scale = input_scale * weight_scale``, and
the softmax output at scale 1/256, zero point -128.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

from bench.models.mobilenet_network import INPUT_RANGE, RELU6, Conv, FloatArray, network, normalize
from bench.models.tflite_graph import Graph, op_version
from bench.models.tflite_quant import ChannelQuant, Quant, quantize, range_quant

MobileNetDType = Literal["float32", "int8"]
"""Element type of the model's input, output and activations."""

_RANGE_MARGIN: Final = 1.25  # head room over the calibrated activation ranges


def _activation_quant(lo: float, hi: float, relu6: bool = False) -> Quant:
    if relu6:
        return range_quant(0.0, min(RELU6, hi * _RANGE_MARGIN), "int8")
    return range_quant(lo * _RANGE_MARGIN, hi * _RANGE_MARGIN, "int8")


def _channel_scales(weights: FloatArray, axis: int) -> npt.NDArray[np.float32]:
    """Symmetric per-channel int8 scales ``max|w| / 127`` along ``axis`` (1 for an all-zero channel)."""
    other = tuple(a for a in range(weights.ndim) if a != axis)
    scales = (np.max(np.abs(weights), axis=other) / 127.0).astype(np.float32)
    return np.where(scales > 0.0, scales, np.float32(1.0))


def _emit_conv(
    graph: Graph, conv: Conv, x: int, hw: tuple[int, int], in_quant: Quant | None, out_quant: Quant | None
) -> int:
    """Adds ``conv`` (weights, zero bias, output ``[1, *hw, out]``) reading ``x``; returns its output."""
    dtype = "float32" if in_quant is None else "int8"
    cout = conv.out_channels
    weights: npt.ArrayLike = conv.weights
    w_quant = b_quant = None
    if in_quant is not None:
        axis = 3 if conv.depthwise else 0
        scales = _channel_scales(conv.weights, axis)
        broadcast = [1] * conv.weights.ndim
        broadcast[axis] = cout
        weights = np.clip(np.round(conv.weights / scales.reshape(broadcast)), -127, 127)
        w_quant = ChannelQuant(tuple(scales.tolist()), axis)
        b_quant = ChannelQuant(tuple((np.float32(in_quant.scale) * scales).astype(np.float32).tolist()), 0)
    w = graph.tensor(f"{conv.name}/weights", conv.weights.shape, dtype, w_quant, weights)
    b = graph.tensor(
        f"{conv.name}/bias", (cout,), "int32" if in_quant else "float32", b_quant, np.zeros(cout)
    )
    y = graph.tensor(conv.name, (1, *hw, cout), dtype, out_quant)
    activation = schema.ActivationFunctionType.RELU6 if conv.relu6 else schema.ActivationFunctionType.NONE
    options: object
    if conv.depthwise:
        code = schema.BuiltinOperator.DEPTHWISE_CONV_2D
        options = schema.DepthwiseConv2DOptionsT(
            padding=schema.Padding.SAME,
            strideW=conv.stride,
            strideH=conv.stride,
            depthMultiplier=1,
            fusedActivationFunction=activation,
        )
    else:
        code = schema.BuiltinOperator.CONV_2D
        options = schema.Conv2DOptionsT(
            padding=schema.Padding.SAME,
            strideW=conv.stride,
            strideH=conv.stride,
            fusedActivationFunction=activation,
        )
    graph.op(code, op_version(code, dtype), [x, w, b], [y], options)
    return y


def _emit_classifier(
    graph: Graph,
    fc_weights: FloatArray,
    x: int,
    in_quant: Quant | None,
    ranges: dict[str, tuple[float, float]],
) -> int:
    """MEAN over H, W -> FULLY_CONNECTED -> SOFTMAX on tensor ``x``; returns the output tensor."""
    op = schema.BuiltinOperator
    dtype = "float32" if in_quant is None else "int8"
    classes, channels = fc_weights.shape
    pooled_quant = logits_quant = out_quant = w_quant = b_quant = None
    weights: npt.ArrayLike = fc_weights
    if in_quant is not None:
        pooled_quant = _activation_quant(*ranges["pooled"])
        logits_quant = _activation_quant(*ranges["logits"])
        out_quant = Quant(1.0 / 256.0, -128)
        w_quant = Quant(float(np.float32(np.max(np.abs(fc_weights)) / 127.0)), 0)
        b_quant = Quant(float(np.float32(pooled_quant.scale) * np.float32(w_quant.scale)), 0)
        weights = quantize(fc_weights, w_quant, "int8")
    axes = graph.tensor("mean_axes", (2,), "int32", None, [1, 2])
    pooled = graph.tensor("pooled", (1, channels), dtype, pooled_quant)
    graph.op(op.MEAN, op_version(op.MEAN, dtype), [x, axes], [pooled], schema.ReducerOptionsT(keepDims=False))
    w = graph.tensor("classifier/weights", (classes, channels), dtype, w_quant, weights)
    b_dtype = "float32" if in_quant is None else "int32"
    b = graph.tensor("classifier/bias", (classes,), b_dtype, b_quant, np.zeros(classes))
    logits = graph.tensor("logits", (1, classes), dtype, logits_quant)
    fc_version = op_version(op.FULLY_CONNECTED, dtype)
    graph.op(op.FULLY_CONNECTED, fc_version, [pooled, w, b], [logits], schema.FullyConnectedOptionsT())
    y = graph.tensor("output", (1, classes), dtype, out_quant)
    graph.op(op.SOFTMAX, op_version(op.SOFTMAX, dtype), [logits], [y], schema.SoftmaxOptionsT(beta=1.0))
    return y


def mobilenet_v2_like(
    size: int = 224, classes: int = 1000, alpha: float = 1.0, dtype: MobileNetDType = "float32", seed: int = 0
) -> bytes:
    """A MobileNetV2-architecture classifier: ``[1, size, size, 3]`` -> ``[1, classes]`` probabilities.

    ``alpha`` is the width multiplier (channel counts rounded to multiples of 8, the head keeps 1280 for
    ``alpha <= 1``); ``dtype`` is ``"float32"`` or ``"int8"`` (fully quantized, input covering [-1, 1]);
    ``seed`` fixes the weights (and the int8 calibration), so equal arguments give identical bytes.
    """
    if dtype not in ("float32", "int8"):
        raise ValueError(f"unsupported dtype {dtype!r}: expected 'float32' or 'int8'")
    if size < 1 or classes < 1 or not alpha > 0.0:
        raise ValueError(f"size, classes and alpha must be positive: {size}, {classes}, {alpha}")
    net, ranges = normalize(network(classes, alpha, seed), size, seed)
    quantized = dtype == "int8"
    graph = Graph()
    in_quant = range_quant(*INPUT_RANGE, "int8") if quantized else None
    model_input = x = graph.tensor("input", (1, size, size, 3), dtype, in_quant)
    height = width = size
    for block in net.blocks:
        block_input = x
        for conv in block.convs:
            height, width = -(-height // conv.stride), -(-width // conv.stride)
            out_quant = _activation_quant(*ranges[conv.name], relu6=conv.relu6) if quantized else None
            x, in_quant = _emit_conv(graph, conv, x, (height, width), in_quant, out_quant), out_quant
        if block.residual:
            name, channels = f"{block.name}/add", block.convs[-1].out_channels
            add_quant = _activation_quant(*ranges[name]) if quantized else None
            y = graph.tensor(name, (1, height, width, channels), dtype, add_quant)
            add = schema.BuiltinOperator.ADD
            graph.op(add, op_version(add, dtype), [block_input, x], [y], schema.AddOptionsT())
            x, in_quant = y, add_quant
    output = _emit_classifier(graph, net.fc_weights, x, in_quant, ranges)
    description = f"MobileNetV2-like {size}x{size}x3, alpha {alpha}, {classes} classes, seed {seed} ({dtype})"
    return graph.finish([model_input], [output], description)
