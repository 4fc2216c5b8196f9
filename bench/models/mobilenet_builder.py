"""Builds a MobileNetV2-shaped .tflite model (random, seeded weights) as a realistic latency-benchmark load.

:func:`mobilenet_v2_like` lays out the MobileNetV2 architecture (Sandler et al. 2018, as in Keras'
``MobileNetV2``) with the ops the TFLite converter emits for it (batch norm folded into the convolutions):

* stem: CONV_2D 3x3 stride 2, 32 filters, RELU6;
* 17 inverted-residual blocks from the ``(t, c, n, s)`` table :data:`INVERTED_RESIDUAL_SETTINGS`: a 1x1
  CONV_2D expansion to ``t * in`` channels + RELU6 (skipped when ``t == 1``, as in MobileNetV2),
  DEPTHWISE_CONV_2D 3x3 (stride ``s`` for the first block of a stage, else 1) + RELU6, a linear 1x1
  CONV_2D projection to ``c`` channels, and an ADD of the block input when the shapes match;
* head: CONV_2D 1x1 to 1280 + RELU6, MEAN over H and W, FULLY_CONNECTED to ``classes``, SOFTMAX.

Every convolution uses SAME padding. Weights are He-normal from ``numpy.random.default_rng(seed)``, each
layer then rescaled so its pre-activation RMS is 1 on a seeded random input in [-1, 1] (the usual MobileNet
preprocessing) -- a stand-in for the folded batch norm, without which activations die out or saturate --
and biases are zero. The network is meaningless as a classifier, but its parameter count (about 3.49M at
``alpha`` 1.0 with 1000 classes), its 301M multiply-accumulates at 224x224 and its memory traffic are
MobileNetV2's.

The int8 model is fully quantized the way the converter does it: int8 input and output, every activation
per-tensor asymmetric int8 with its range calibrated by running the float network in NumPy on a seeded
random input (RELU6 outputs within [0, 6]), conv and depthwise filters per-channel symmetric int8
(quantized dimension 0 for CONV_2D ``[out, h, w, in]``, 3 for DEPTHWISE_CONV_2D ``[1, h, w, out]``), the
FULLY_CONNECTED weights per-tensor symmetric, int32 biases with ``scale = input_scale * weight_scale``, and
the softmax output at scale 1/256, zero point -128.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

from bench.models.tflite_graph import Graph, op_version
from bench.models.tflite_quant import ChannelQuant, Quant, quantize, range_quant

MobileNetDType = Literal["float32", "int8"]
"""Element type of the model's input, output and activations."""

INVERTED_RESIDUAL_SETTINGS: Final[tuple[tuple[int, int, int, int], ...]] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""MobileNetV2's blocks: expansion factor ``t``, output channels ``c``, repeats ``n``, first stride ``s``."""

STEM_CHANNELS: Final = 32
HEAD_CHANNELS: Final = 1280
INPUT_RANGE: Final = (-1.0, 1.0)
"""The real input range the int8 input quantization covers and the calibration samples from."""

_PRE_ACTIVATION_RMS: Final = 1.0  # of every convolution's output, before RELU6 (see _normalize)
_LOGIT_RMS: Final = 5.0  # spread of the logits, so the softmax (int8: steps of 1/256) is not flat
_RANGE_MARGIN: Final = 1.25  # head room over the calibrated activation ranges
_RELU6: Final = 6.0

FloatArray = npt.NDArray[np.float32]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a channel count to a multiple of ``divisor`` (never down by more than 10%), as MobileNetV2."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class _Conv:
    """One CONV_2D (weights ``[out, k, k, in]``) or DEPTHWISE_CONV_2D (weights ``[1, k, k, channels]``)."""

    name: str
    weights: FloatArray
    stride: int
    depthwise: bool
    relu6: bool

    @property
    def out_channels(self) -> int:
        return int(self.weights.shape[3] if self.depthwise else self.weights.shape[0])


@dataclass(frozen=True)
class _Block:
    """Convolutions applied in sequence, plus an ADD of the block input when ``residual``."""

    name: str
    convs: tuple[_Conv, ...]
    residual: bool


@dataclass(frozen=True)
class _Network:
    blocks: tuple[_Block, ...]
    fc_weights: FloatArray  # [classes, channels]


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> FloatArray:
    return (rng.standard_normal(shape) * float(np.sqrt(2.0 / fan_in))).astype(np.float32)


def _network(classes: int, alpha: float, seed: int) -> _Network:
    """The layer layout with raw He-normal weights (before :func:`_normalize`)."""
    rng = np.random.default_rng(seed)

    def conv(name: str, cin: int, cout: int, k: int, stride: int, relu6: bool) -> _Conv:
        return _Conv(name, _he(rng, (cout, k, k, cin), k * k * cin), stride, False, relu6)

    def depthwise(name: str, channels: int, stride: int) -> _Conv:
        return _Conv(name, _he(rng, (1, 3, 3, channels), 9), stride, True, True)

    channels = make_divisible(STEM_CHANNELS * alpha)
    blocks = [_Block("stem", (conv("stem", 3, channels, 3, 2, True),), False)]
    for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
        out = make_divisible(int(c * alpha))  # as Keras
        for i in range(n):
            name, stride = f"block{len(blocks) - 1}", s if i == 0 else 1
            hidden = channels * t
            convs = [conv(f"{name}/expand", channels, hidden, 1, 1, True)] if t != 1 else []
            convs += [depthwise(f"{name}/depthwise", hidden, stride)]
            convs += [conv(f"{name}/project", hidden, out, 1, 1, False)]
            blocks.append(_Block(name, tuple(convs), stride == 1 and channels == out))
            channels = out
    head = HEAD_CHANNELS if alpha <= 1.0 else make_divisible(HEAD_CHANNELS * alpha)
    blocks.append(_Block("head", (conv("head", channels, head, 1, 1, True),), False))
    return _Network(tuple(blocks), _he(rng, (classes, head), head))


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """Output size and (before, after) padding of TFLite's SAME padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def _convolve(x: FloatArray, weights: FloatArray, stride: int, depthwise: bool) -> FloatArray:
    """Float reference of a SAME-padded convolution of an ``[h, w, c]`` activation (no bias or activation)."""
    k = weights.shape[1]
    (oh, top, bottom), (ow, left, right) = (_same_padding(d, k, stride) for d in x.shape[:2])
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    span_h, span_w = (oh - 1) * stride + 1, (ow - 1) * stride + 1
    taps = [xp[dy : dy + span_h : stride, dx : dx + span_w : stride, :] for dy in range(k) for dx in range(k)]
    if depthwise:
        y = np.zeros((oh, ow, x.shape[2]), dtype=np.float32)
        for tap, w in zip(taps, weights.reshape(k * k, -1), strict=True):
            y += tap * w
        return y
    patches = np.concatenate(taps, axis=2) if k > 1 else taps[0]
    return np.asarray(patches @ weights.reshape(weights.shape[0], -1).T, dtype=np.float32)


def _normalize(net: _Network, size: int, seed: int) -> tuple[_Network, dict[str, tuple[float, float]]]:
    """Rescales each layer's weights, on a seeded random input, to a fixed pre-activation RMS.

    This stands in for the batch norm a trained MobileNetV2 folds into its convolutions: without it,
    random weights make the activations die out or saturate RELU6 within a few dozen layers. Returns the
    rescaled network and the (min, max) of every activation by tensor name (the int8 calibration).
    """
    rng = np.random.default_rng([seed, 1])
    x = rng.uniform(*INPUT_RANGE, size=(size, size, 3)).astype(np.float32)
    ranges: dict[str, tuple[float, float]] = {}

    def record(name: str, value: FloatArray) -> FloatArray:
        ranges[name] = (float(value.min()), float(value.max()))
        return value

    def rms(value: FloatArray) -> float:
        return float(np.sqrt(np.mean(np.square(value, dtype=np.float64)))) or 1.0

    blocks = []
    for block in net.blocks:
        y, convs = x, []
        for conv in block.convs:
            pre = _convolve(y, conv.weights, conv.stride, conv.depthwise)
            scale = np.float32(_PRE_ACTIVATION_RMS / rms(pre))
            convs.append(replace(conv, weights=conv.weights * scale))
            y = pre * scale
            y = record(conv.name, np.clip(y, 0.0, _RELU6) if conv.relu6 else y)
        blocks.append(replace(block, convs=tuple(convs)))
        x = record(f"{block.name}/add", x + y) if block.residual else y
    pooled = record("pooled", x.mean(axis=(0, 1)))
    logits = net.fc_weights @ pooled
    fc_weights = net.fc_weights * np.float32(_LOGIT_RMS / rms(logits - logits.mean()))
    record("logits", (fc_weights @ pooled).astype(np.float32))
    return _Network(tuple(blocks), fc_weights), ranges


def _activation_quant(lo: float, hi: float, relu6: bool = False) -> Quant:
    if relu6:
        return range_quant(0.0, min(_RELU6, hi * _RANGE_MARGIN), "int8")
    return range_quant(lo * _RANGE_MARGIN, hi * _RANGE_MARGIN, "int8")


def _channel_scales(weights: FloatArray, axis: int) -> npt.NDArray[np.float32]:
    """Symmetric per-channel int8 scales ``max|w| / 127`` along ``axis`` (1 for an all-zero channel)."""
    other = tuple(a for a in range(weights.ndim) if a != axis)
    scales = (np.max(np.abs(weights), axis=other) / 127.0).astype(np.float32)
    return np.where(scales > 0.0, scales, np.float32(1.0))


def _emit_conv(
    graph: Graph, conv: _Conv, x: int, hw: tuple[int, int], in_quant: Quant | None, out_quant: Quant | None
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
    net, ranges = _normalize(_network(classes, alpha, seed), size, seed)
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
