"""Channel features over windows (vibration, temperature, pressure), computed for the safety rules."""

from appliance.field.features.baseline import Baseline
from appliance.field.features.channel import ChannelFeatures, ChannelKind, FeatureSnapshot
from appliance.field.features.waveform import WaveformAnalyzer, WaveformFeatures, WaveformSettings, band_name
from appliance.field.features.window import RollingWindow

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
