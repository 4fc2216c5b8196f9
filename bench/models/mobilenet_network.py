"""MobileNetV2's layout with random, seeded weights, and the float reference (NumPy) that rescales them and
calibrates the int8 activation ranges: what mobilenet_builder.py emits as a .tflite model.

The layout (Sandler et al. 2018, as in Keras' ``MobileNetV2``), batch norm folded into the convolutions:

* stem: CONV_2D 3x3 stride 2, 32 filters, RELU6;
* 17 inverted-residual blocks from the ``(t, c, n, s)`` table :data:`INVERTED_RESIDUAL_SETTINGS`: a 1x1
  CONV_2D expansion to ``t * in`` channels + RELU6 (skipped when ``t == 1``, as in MobileNetV2),
  DEPTHWISE_CONV_2D 3x3 (stride ``s`` for the first block of a stage, else 1) + RELU6, a linear 1x1
  CONV_2D projection to ``c`` channels, and an ADD of the block input when the shapes match;
* head: CONV_2D 1x1 to 1280 + RELU6, MEAN over H and W, FULLY_CONNECTED to ``classes``, SOFTMAX.

Every convolution uses SAME padding. Weights are He-normal from ``numpy.random.default_rng(seed)``, each
layer then rescaled so its pre-activation RMS is 1 on a seeded random input in [-1, 1] (the usual MobileNet
preprocessing) -- a stand-in for the folded batch norm, without which activations die out or saturate --
and biases are zero.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import numpy.typing as npt

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

_PRE_ACTIVATION_RMS: Final = 1.0  # of every convolution's output, before RELU6 (see normalize)
_LOGIT_RMS: Final = 5.0  # spread of the logits, so the softmax (int8: steps of 1/256) is not flat
RELU6: Final = 6.0

FloatArray = npt.NDArray[np.float32]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a channel count to a multiple of ``divisor`` (never down by more than 10%), as MobileNetV2."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class Conv:
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
class Block:
    """Convolutions applied in sequence, plus an ADD of the block input when ``residual``."""

    name: str
    convs: tuple[Conv, ...]
    residual: bool


@dataclass(frozen=True)
class Network:
    """The blocks in order, then the classifier's weights."""

    blocks: tuple[Block, ...]
    fc_weights: FloatArray  # [classes, channels]


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> FloatArray:
    return (rng.standard_normal(shape) * float(np.sqrt(2.0 / fan_in))).astype(np.float32)


def network(classes: int, alpha: float, seed: int) -> Network:
    """The layer layout with raw He-normal weights (before :func:`normalize`)."""
    rng = np.random.default_rng(seed)

    def conv(name: str, cin: int, cout: int, k: int, stride: int, relu6: bool) -> Conv:
        return Conv(name, _he(rng, (cout, k, k, cin), k * k * cin), stride, False, relu6)

    def depthwise(name: str, channels: int, stride: int) -> Conv:
        return Conv(name, _he(rng, (1, 3, 3, channels), 9), stride, True, True)

    channels = make_divisible(STEM_CHANNELS * alpha)
    blocks = [Block("stem", (conv("stem", 3, channels, 3, 2, True),), False)]
    for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
        out = make_divisible(int(c * alpha))  # as Keras
        for i in range(n):
            name, stride = f"block{len(blocks) - 1}", s if i == 0 else 1
            hidden = channels * t
            convs = [conv(f"{name}/expand", channels, hidden, 1, 1, True)] if t != 1 else []
            convs += [depthwise(f"{name}/depthwise", hidden, stride)]
            convs += [conv(f"{name}/project", hidden, out, 1, 1, False)]
            blocks.append(Block(name, tuple(convs), stride == 1 and channels == out))
            channels = out
    head = HEAD_CHANNELS if alpha <= 1.0 else make_divisible(HEAD_CHANNELS * alpha)
    blocks.append(Block("head", (conv("head", channels, head, 1, 1, True),), False))
    return Network(tuple(blocks), _he(rng, (classes, head), head))


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


def normalize(net: Network, size: int, seed: int) -> tuple[Network, dict[str, tuple[float, float]]]:
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
            y = record(conv.name, np.clip(y, 0.0, RELU6) if conv.relu6 else y)
        blocks.append(replace(block, convs=tuple(convs)))
        x = record(f"{block.name}/add", x + y) if block.residual else y
    pooled = record("pooled", x.mean(axis=(0, 1)))
    logits = net.fc_weights @ pooled
    fc_weights = net.fc_weights * np.float32(_LOGIT_RMS / rms(logits - logits.mean()))
    record("logits", (fc_weights @ pooled).astype(np.float32))
    return Network(tuple(blocks), fc_weights), ranges
