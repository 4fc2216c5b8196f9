"""Features of one block of waveform samples (vibration): RMS, peak, crest factor and FFT band amplitudes.

Band amplitude, for a block x_0..x_{N-1} sampled at fs Hz:

    w_n = 0.5 - 0.5 * cos(2*pi*n / N)               periodic Hann window, n = 0..N-1
    X_k = rfft(w * x)_k,  f_k = k * fs / N          k = 0..N//2
    P_k = c_k * |X_k|^2 / (N * sum_n w_n^2)         c_k = 1 for DC and the Nyquist bin (even N), else 2
    A_band = sqrt(sum of P_k over bins with low <= f_k < high)   (f_k == high counts when high is Nyquist)

Summed over every bin, P_k gives sum(w^2 x^2) / sum(w^2), the window-weighted mean square of the block, so
A_band is an RMS in the signal's own unit and does not depend on N: a sine of amplitude A well inside a band
reads A / sqrt(2) there. Hann leakage spreads a tone over about two bins either side, so a tone that close to
a band edge shares its energy with the neighbour band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Samples = NDArray[np.floating[Any]]

# block lengths whose window and bin ranges are kept; lengths vary only when bad samples are dropped
_CACHE_SIZE = 8


def band_name(low_hz: float, high_hz: float) -> str:
    """The name a band is reported under, e.g. "10-100Hz"."""
    return f"{low_hz:g}-{high_hz:g}Hz"


@dataclass(frozen=True, slots=True)
class WaveformSettings:
    """How a waveform channel is sampled and which frequency bands are watched."""

    sample_rate_hz: float
    bands: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        rate = self.sample_rate_hz
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"sample_rate_hz must be a positive number, got {rate!r}")
        nyquist = rate / 2
        names: set[str] = set()
        for band in self.bands:
            if len(band) != 2:
                raise ValueError(f"band {band!r} must be a pair (low_hz, high_hz)")
            low, high = band
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"band {band!r} has a bound that is not a finite number")
            if low >= high:
                raise ValueError(f"band {band_name(low, high)}: low_hz must be below high_hz")
            if low < 0 or high > nyquist:
                raise ValueError(
                    f"band {band_name(low, high)} lies outside 0..{nyquist:g} Hz (Nyquist at {rate:g} Hz)"
                )
            name = band_name(low, high)
            if name in names:
                raise ValueError(f"band {name} is listed twice")
            names.add(name)

    @property
    def nyquist_hz(self) -> float:
        return self.sample_rate_hz / 2

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(band_name(low, high) for low, high in self.bands)


@dataclass(frozen=True, slots=True)
class WaveformFeatures:
    """Features of one block, in the signal's unit (crest factor is a ratio)."""

    rms: float
    peak: float
    peak_to_peak: float  # inf only when max - min exceeds the float range
    crest_factor: float | None  # None for an all-zero block
    bands: dict[str, float | None]  # None for a band too narrow to hold a bin at this block length


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a block of one length needs: its window, the scale of P_k and each band's bin range."""

    window: NDArray[np.float64]
    scale: NDArray[np.float64]  # c_k / (N * sum(w^2))
    spans: tuple[tuple[int, int], ...]


class WaveformAnalyzer:
    """Computes `WaveformFeatures` for blocks of one channel, reusing the window between blocks."""

    def __init__(self, settings: WaveformSettings) -> None:
        self.settings = settings
        self._plans: dict[int, _Plan] = {}

    def analyze(self, samples: Samples) -> WaveformFeatures:
        """Features of a non-empty 1-D block of finite samples; anything else is a ValueError."""
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"expected a non-empty 1-D block of samples, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("block holds NaN or infinite samples")
        high, low = float(x.max()), float(x.min())
        peak = max(high, -low)
        names = self.settings.band_names
        if peak == 0.0:
            return WaveformFeatures(0.0, 0.0, 0.0, None, self._bands(x, 1.0, names))
        # Work on x / peak, in [-1, 1]: squaring or transforming values near the float limit overflows.
        unit = x / peak
        rms = peak * math.sqrt(float(np.mean(unit * unit)))
        return WaveformFeatures(
            rms=rms,
            peak=peak,
            peak_to_peak=high - low,  # Python floats: overflow gives inf, not a RuntimeWarning
            crest_factor=peak / rms if rms > 0 else None,  # rms underflows to 0 only for subnormal blocks
            bands=self._bands(unit, peak, names),
        )

    def _bands(
        self, unit: NDArray[np.float64], peak: float, names: tuple[str, ...]
    ) -> dict[str, float | None]:
        if not names:
            return {}
        if unit.size < 2:  # the periodic Hann window of one sample is zero
            return dict.fromkeys(names, None)
        plan = self._plan(unit.size)
        spectrum = np.fft.rfft(unit * plan.window)
        power = (spectrum.real**2 + spectrum.imag**2) * plan.scale
        bands: dict[str, float | None] = {}
        for name, (start, stop) in zip(names, plan.spans, strict=True):
            bands[name] = peak * math.sqrt(float(power[start:stop].sum())) if stop > start else None
        return bands

    def _plan(self, n: int) -> _Plan:
        plan = self._plans.get(n)
        if plan is None:
            if len(self._plans) >= _CACHE_SIZE:
                self._plans.clear()
            plan = self._plans[n] = self._make_plan(n)
        return plan

    def _make_plan(self, n: int) -> _Plan:
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
        bins = n // 2 + 1
        weight = np.full(bins, 2.0)
        weight[0] = 1.0
        if n % 2 == 0:
            weight[-1] = 1.0
        scale = weight / (n * float(np.sum(window * window)))
        per_bin = self.settings.sample_rate_hz / n
        spans = []
        for low, high in self.settings.bands:
            # a small slack so a band edge that falls exactly on a bin is not lost to rounding
            start = math.ceil(low / per_bin - 1e-9)
            stop = bins if high >= self.settings.nyquist_hz else math.ceil(high / per_bin - 1e-9)
            spans.append((min(start, bins), min(stop, bins)))
        return _Plan(window, scale, tuple(spans))
