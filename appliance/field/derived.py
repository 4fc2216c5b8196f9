"""Derived channels: the features of a channel (rate of change, deviation in sigma, waveform RMS, peak and
band energies) published as readings of their own, `<channel>.<feature>`, so rules and the store treat
them like any other channel. Features' windows run on the monotonic time `at` of the reading's arrival,
their readings carry its wall-clock `ts`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from appliance.config.registers import RegisterSettings
from appliance.field.features import ChannelFeatures, FeatureSnapshot
from appliance.records import Quality, Reading, is_bad_value

SIGNIFICANT_DIGITS = 6  # of a feature's value; the inputs (16-bit registers, ADC samples) resolve fewer


class DerivedChannels:
    """Feature state for every channel of one device that asks for features."""

    def __init__(self, device: str, registers: Sequence[RegisterSettings]) -> None:
        self.device = device
        self.features = {
            r.channel: ChannelFeatures(
                r.features.window_s, r.features.baseline_samples, r.features.waveform()
            )
            for r in registers
            if r.features is not None
        }
        self.units = {r.channel: r.unit for r in registers}

        self.waveform_names = {
            r.channel: ["rms", "peak", "sigma"] + [f"band_{b}" for b in waveform.band_names]
            for r in registers
            if r.features is not None and (waveform := r.features.waveform()) is not None
        }

    def __contains__(self, channel: str) -> bool:
        return channel in self.features

    def failed(self, channel: str, ts: float) -> list[Reading]:
        """Error readings for what a channel publishes when its read failed: a waveform's features, or
        the channel itself."""
        names = (
            [f"{channel}.{n}" for n in self.waveform_names[channel]]
            if channel in self.waveform_names
            else [channel]
        )
        return [
            Reading(self.device, name, None, self.units.get(channel, ""), ts, Quality.ERROR) for name in names
        ]

    def scalar(self, channel: str, ts: float, at: float, value: float) -> list[Reading]:
        snap = self.features[channel].add_value(at, value)
        unit = self.units[channel]
        return self._emit(
            channel, ts, [("rate", snap.rate_per_s, f"{unit}/s"), ("sigma", snap.sigma, "sigma")]
        )

    def waveform(self, channel: str, ts: float, at: float, samples: npt.NDArray[np.float64]) -> list[Reading]:
        snap = self.features[channel].add_block(at, samples)
        unit = self.units[channel]
        values = [("rms", snap.rms, unit), ("peak", snap.peak, unit), ("sigma", snap.sigma, "sigma")]
        values += [(f"band_{name}", amplitude, unit) for name, amplitude in (snap.bands or {}).items()]
        return self._emit(channel, ts, values)

    def _emit(self, channel: str, ts: float, values: list[tuple[str, float | None, str]]) -> list[Reading]:
        # A feature not known yet (baseline still learning, too few samples) is left out, not sent as None.
        # Features are estimates: past SIGNIFICANT_DIGITS their digits are noise that costs disk and link.
        # One that is no finite number (the features of a block of huge samples) is an error reading.
        return [
            Reading(
                self.device,
                f"{channel}.{name}",
                float(f"{value:.{SIGNIFICANT_DIGITS}g}"),
                unit,
                ts,
                Quality.ERROR if is_bad_value(value) else Quality.OK,
            )
            for name, value, unit in values
            if value is not None
        ]


__all__ = ["DerivedChannels", "FeatureSnapshot"]
