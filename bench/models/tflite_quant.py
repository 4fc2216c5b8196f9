"""Quantization as TFLite defines it, for the models bench/models builds: per-tensor affine and
per-channel symmetric parameters (and their schema form), choosing them for a range of reals or a single
constant, and quantizing real values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

QUANT_LIMITS: Final[dict[str, tuple[int, int]]] = {"int8": (-128, 127), "uint8": (0, 255)}
NUMPY_TYPES: Final[dict[str, type[np.generic]]] = {  # a tensor's element type as NumPy's
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


def range_quant(lo: float, hi: float, dtype: str) -> Quant:
    """Asymmetric quantization covering ``[lo, hi]`` (widened to include 0, as TFLite needs) in ``dtype``."""
    qmin, qmax = QUANT_LIMITS[dtype]
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0.0:
        hi = lo + 1.0
    scale = float(np.float32((hi - lo) / (qmax - qmin)))
    zero_point = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return Quant(scale, zero_point)


def constant_quant(value: float, dtype: str) -> tuple[Quant, int]:
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
    qmin, qmax = QUANT_LIMITS[dtype] if dtype in QUANT_LIMITS else (-(2**31), 2**31 - 1)
    q = np.round(np.asarray(values, dtype=np.float64) / quant.scale) + quant.zero_point
    return np.clip(q, qmin, qmax).astype(NUMPY_TYPES[dtype])
