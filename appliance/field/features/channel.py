"""One channel's features, update by update: its window, its baseline and, for vibration, block analysis."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from appliance.field.features.baseline import Baseline
from appliance.field.features.waveform import WaveformAnalyzer, WaveformSettings
from appliance.field.features.window import RollingWindow


class ChannelKind(enum.StrEnum):
    """What one reading of the channel is."""

    SCALAR = "scalar"  # one value: temperature, pressure
    WAVEFORM = "waveform"  # a block of samples at a fixed rate: vibration


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    """The channel's features after one update; a field that does not apply, or cannot be known, is None.

    Scalar channels: value is the reading; mean, rms, peak (max |value|) and rate_per_s are over the window;
    sigma is the reading's. Waveform channels: rms, peak and bands are the block's; mean and rate_per_s are
    the window's over block RMS values; sigma is the block RMS's. No field is ever NaN.
    """

    value: float | None = None
    mean: float | None = None
    rms: float | None = None
    peak: float | None = None
    rate_per_s: float | None = None
    sigma: float | None = None
    bands: dict[str, float | None] | None = None


class ChannelFeatures:
    """Features of one sensor channel. Garbage readings never raise: they are dropped and counted.

    `rejected` counts the NaN or infinite values or block samples dropped, plus every sample of a reading
    whose timestamp is not finite or whose block is not one-dimensional. A reading with nothing usable left
    gets an all-None snapshot.
    """

    def __init__(
        self, window_s: float, baseline_samples: int, waveform: WaveformSettings | None = None
    ) -> None:
        self.window = RollingWindow(window_s)
        self.baseline = Baseline(baseline_samples)
        self.analyzer = WaveformAnalyzer(waveform) if waveform is not None else None
        self.rejected = 0

    @property
    def kind(self) -> ChannelKind:
        return ChannelKind.SCALAR if self.analyzer is None else ChannelKind.WAVEFORM

    def add_value(self, ts: float, value: float) -> FeatureSnapshot:
        """Feed one reading of a scalar channel."""
        if self.analyzer is not None:
            raise TypeError("this is a waveform channel: feed it blocks with add_block()")
        try:
            ts, value = float(ts), float(value)
        except (TypeError, ValueError):
            ts = value = math.nan
        if not self.window.add(ts, value):
            self.rejected += 1
            return FeatureSnapshot()
        low, high = self.window.min, self.window.max
        return FeatureSnapshot(
            value=value,
            mean=self.window.mean,
            rms=self.window.rms,
            peak=max(abs(low), abs(high)) if low is not None and high is not None else None,
            rate_per_s=self.window.rate_of_change,
            sigma=self.baseline.update(value),
        )

    def add_block(self, ts: float, samples: ArrayLike) -> FeatureSnapshot:
        """Feed one block of a waveform channel, sampled at the configured rate."""
        if self.analyzer is None:
            raise TypeError("this is a scalar channel: feed it values with add_value()")
        try:
            block = np.asarray(samples, dtype=np.float64)
        except (TypeError, ValueError):
            self.rejected += 1
            return FeatureSnapshot()
        if block.ndim != 1 or not math.isfinite(ts):
            self.rejected += max(block.size, 1)
            return FeatureSnapshot()
        finite = np.isfinite(block)
        if not finite.all():
            block = block[finite]
            self.rejected += int(finite.size - block.size)
        if block.size == 0:
            return FeatureSnapshot()
        features = self.analyzer.analyze(block)
        self.window.add(ts, features.rms)
        return FeatureSnapshot(
            rms=features.rms,
            peak=features.peak,
            mean=self.window.mean,
            rate_per_s=self.window.rate_of_change,
            sigma=self.baseline.update(features.rms),
            bands=features.bands,
        )

    def reset(self) -> None:
        """Start over: empty window, baseline learning again, rejected count at zero."""
        self.window.clear()
        self.baseline.reset()
        self.rejected = 0
