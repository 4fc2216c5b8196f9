"""Channel features over windows (vibration, temperature, pressure), computed for the safety rules."""

from appliance.features.baseline import Baseline
from appliance.features.channel import ChannelFeatures, ChannelKind, FeatureSnapshot
from appliance.features.waveform import WaveformAnalyzer, WaveformFeatures, WaveformSettings, band_name
from appliance.features.window import RollingWindow

__all__ = [
    "Baseline",
    "ChannelFeatures",
    "ChannelKind",
    "FeatureSnapshot",
    "RollingWindow",
    "WaveformAnalyzer",
    "WaveformFeatures",
    "WaveformSettings",
    "band_name",
]
