"""Channel features against closed-form results, and fed garbage: NaN, inf, empty, huge and tiny input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from appliance.field.features import (
    Baseline,
    ChannelFeatures,
    ChannelKind,
    FeatureSnapshot,
    RollingWindow,
    WaveformAnalyzer,
    WaveformSettings,
)

FS = 1000.0
BANDS = ((10.0, 100.0), (100.0, 200.0), (200.0, 500.0))
T0 = 1_700_000_000.0  # wall-clock seconds, as readings carry them: the slope must keep its precision


def sine(amplitude: float, freq_hz: float, n: int, fs: float = FS, phase: float = 0.0) -> NDArray[np.float64]:
    block: NDArray[np.float64] = amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n) / fs + phase)
    return block


def no_nan(snapshot: FeatureSnapshot) -> bool:
    numbers = [snapshot.value, snapshot.mean, snapshot.rms, snapshot.peak, snapshot.rate_per_s]
    numbers += [snapshot.sigma, *(snapshot.bands or {}).values()]
    return not any(x is not None and math.isnan(x) for x in numbers)


# --- waveform blocks ---


@pytest.mark.parametrize("n", [1000, 1024, 4096])
def test_sine_has_rms_a_over_root_two_and_peak_a(n: int) -> None:
    amplitude = 3.0
    features = WaveformAnalyzer(WaveformSettings(FS)).analyze(sine(amplitude, 50.0, n, phase=0.3))
    # a whole number of cycles is exact; 1024 and 4096 samples end mid-cycle, which costs < 0.5 %
    assert features.rms == pytest.approx(amplitude / math.sqrt(2), rel=5e-3 if n % 20 else 1e-12)
    assert features.peak == pytest.approx(amplitude, rel=1e-3)
    assert features.peak_to_peak == pytest.approx(2 * amplitude, rel=1e-3)
    assert features.crest_factor == pytest.approx(math.sqrt(2), rel=5e-3)
    assert features.bands == {}


@pytest.mark.parametrize("n", [500, 1000, 1024, 4096])
def test_120hz_tone_lands_in_its_band_whatever_the_block_length(n: int) -> None:
    amplitude = 2.0
    bands = WaveformAnalyzer(WaveformSettings(FS, BANDS)).analyze(sine(amplitude, 120.0, n)).bands
    expected = amplitude / math.sqrt(2)
    assert bands["100-200Hz"] == pytest.approx(expected, rel=0.03)
    assert bands["10-100Hz"] is not None and bands["10-100Hz"] < 0.03 * expected
    assert bands["200-500Hz"] is not None and bands["200-500Hz"] < 0.03 * expected


def test_two_sines_split_into_two_bands_with_their_amplitudes() -> None:
    block = sine(1.0, 30.0, 2048) + sine(0.5, 300.0, 2048, phase=1.0)
    bands = WaveformAnalyzer(WaveformSettings(FS, BANDS)).analyze(block).bands
    assert bands["10-100Hz"] == pytest.approx(1.0 / math.sqrt(2), rel=0.03)
    assert bands["200-500Hz"] == pytest.approx(0.5 / math.sqrt(2), rel=0.03)
    assert bands["100-200Hz"] is not None and bands["100-200Hz"] < 0.01


def test_bands_covering_the_whole_spectrum_add_up_to_the_rms() -> None:
    rng = np.random.default_rng(7)
    block = rng.normal(0.0, 1.5, 4096)
    settings = WaveformSettings(FS, ((0.0, 250.0), (250.0, 500.0)))
    features = WaveformAnalyzer(settings).analyze(block)
    total = math.hypot(*(v for v in features.bands.values() if v is not None))
    # the Hann-weighted mean square of white noise matches the plain one to within a few %
    assert total == pytest.approx(features.rms, rel=0.05)


def test_a_band_too_narrow_for_the_block_reads_none() -> None:
    settings = WaveformSettings(FS, ((101.0, 102.0), (0.0, 500.0)))
    bands = WaveformAnalyzer(settings).analyze(sine(1.0, 120.0, 100)).bands  # 10 Hz per bin
    assert bands["101-102Hz"] is None
    assert bands["0-500Hz"] == pytest.approx(1 / math.sqrt(2), rel=0.03)


@pytest.mark.parametrize(
    ("rate", "bands", "message"),
    [
        (0.0, (), "sample_rate_hz must be a positive number"),
        (math.nan, (), "sample_rate_hz must be a positive number"),
        (FS, ((100.0, 10.0),), "band 100-10Hz: low_hz must be below high_hz"),
        (FS, ((50.0, 50.0),), "low_hz must be below high_hz"),
        (FS, ((10.0, 600.0),), r"band 10-600Hz lies outside 0\.\.500 Hz"),
        (FS, ((-5.0, 10.0),), r"band -5-10Hz lies outside 0\.\.500 Hz"),
        (FS, ((10.0, math.inf),), "not a finite number"),
        (FS, ((10.0, 100.0), (10.0, 100.0)), "band 10-100Hz is listed twice"),
        (FS, ((10.0,),), "must be a pair"),
    ],
)
def test_bad_waveform_settings_name_the_problem(
    rate: float, bands: tuple[tuple[float, float], ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WaveformSettings(rate, bands)


def test_bad_window_and_baseline_settings_name_the_problem() -> None:
    with pytest.raises(ValueError, match="window seconds must be a positive number"):
        RollingWindow(0.0)
    with pytest.raises(ValueError, match="learn_samples must be at least 2"):
        Baseline(1)


def test_analyzer_refuses_garbage_blocks_with_a_clear_error() -> None:
    analyzer = WaveformAnalyzer(WaveformSettings(FS, BANDS))
    with pytest.raises(ValueError, match="non-empty 1-D block"):
        analyzer.analyze(np.array([]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        analyzer.analyze(np.array([1.0, math.nan]))


# --- rolling window ---


def ramp_times(rng: np.random.Generator, seconds: float) -> NDArray[np.float64]:
    """Irregular sample times, 20 ms apart on average."""
    return T0 + np.cumsum(rng.exponential(0.02, int(seconds / 0.02)))


def test_rate_of_change_of_a_ramp_is_its_slope() -> None:
    window = RollingWindow(10.0)
    for ts in ramp_times(np.random.default_rng(1), 60.0):
        window.add(float(ts), 3.0 + 0.5 * (ts - T0))
    assert window.rate_of_change == pytest.approx(0.5, rel=1e-6)


def test_rate_of_change_of_a_noisy_ramp_is_its_slope_within_tolerance() -> None:
    rng = np.random.default_rng(2)
    window = RollingWindow(10.0)
    for ts in ramp_times(rng, 60.0):
        window.add(float(ts), 1e5 - 0.25 * (ts - T0) + rng.normal(0.0, 0.5))
    assert window.rate_of_change == pytest.approx(-0.25, abs=0.02)
    # a 10-sigma spike 10 ms after the last sample: a two-point slope would read about +500 /s
    window.add(T0 + 60.01, 1e5 - 0.25 * 60.01 + 5.0)
    assert window.rate_of_change == pytest.approx(-0.25, abs=0.03)


def test_window_statistics_cover_only_the_last_seconds() -> None:
    rng = np.random.default_rng(3)
    times = ramp_times(rng, 30.0)
    values = rng.normal(20.0, 2.0, times.size)
    window = RollingWindow(5.0)
    for ts, value in zip(times, values, strict=True):
        window.add(float(ts), float(value))
    kept = values[times > times[-1] - 5.0]
    assert len(window) == kept.size
    assert window.mean == pytest.approx(float(kept.mean()), rel=1e-9)
    assert window.min == float(kept.min())
    assert window.max == float(kept.max())
    assert window.rms == pytest.approx(math.sqrt(float(np.mean(kept**2))), rel=1e-9)


def test_rate_of_change_needs_two_samples_and_a_time_span() -> None:
    window = RollingWindow(10.0)
    assert window.rate_of_change is None and window.mean is None
    window.add(T0, 1.0)
    assert window.rate_of_change is None
    window.add(T0, 2.0)
    assert window.rate_of_change is None
    window.add(T0 + 1.0, 3.0)
    assert window.rate_of_change == pytest.approx(1.5)


def test_clock_stepping_back_restarts_the_window() -> None:
    window = RollingWindow(10.0)
    window.add(T0, 1.0)
    window.add(T0 + 1.0, 2.0)
    window.add(T0 - 3600.0, 5.0)
    assert len(window) == 1 and window.mean == 5.0


def test_window_recovers_once_a_value_beyond_the_float_range_leaves() -> None:
    window = RollingWindow(1.0)
    window.add(T0, 1.7e308)
    window.add(T0 + 0.1, -1.7e308)  # the sums overflow: honest while these are in the window
    window.add(T0 + 0.5, 5.0)
    window.add(T0 + 1.2, 6.0)
    assert window.mean == pytest.approx(5.5) and window.rate_of_change == pytest.approx(1 / 0.7)
    assert window.rms == pytest.approx(math.sqrt((25 + 36) / 2))


# --- baseline ---


def test_baseline_learns_mean_and_std_then_scores_sigma() -> None:
    data = np.random.default_rng(4).normal(5.0, 2.0, 2000)
    baseline = Baseline(2000)
    assert all(baseline.update(float(x)) is None for x in data)
    assert not baseline.learning and baseline.count == 2000
    assert baseline.mean == pytest.approx(float(data.mean()), rel=1e-12)
    assert baseline.std == pytest.approx(float(data.std(ddof=1)), rel=1e-9)
    assert baseline.mean == pytest.approx(5.0, abs=0.15)
    assert baseline.std == pytest.approx(2.0, abs=0.1)
    value = 5.0 + 3 * 2.0
    assert baseline.update(value) == pytest.approx((value - data.mean()) / data.std(ddof=1), rel=1e-9)
    assert baseline.count == 2000  # frozen: scoring does not learn
    baseline.reset()
    assert (baseline.learning, baseline.count, baseline.mean) == (True, 0, None)
    assert baseline.sigma(value) is None


def test_baseline_is_silent_while_learning() -> None:
    baseline = Baseline(3)
    assert (baseline.update(1.0), baseline.sigma(1.0)) == (None, None)
    assert (baseline.update(2.0), baseline.learning) == (None, True)
    assert (baseline.update(3.0), baseline.learning) == (None, False)
    assert baseline.update(4.0) == pytest.approx(2.0)


def test_constant_baseline_uses_a_floor_relative_to_the_mean() -> None:
    baseline = Baseline(10)
    for _ in range(10):
        baseline.update(20.0)
    assert baseline.std == 0.0
    assert baseline.sigma(20.1) == pytest.approx(0.1 / (20.0 * 1e-6))
    zero = Baseline(2)
    zero.update(0.0)
    zero.update(0.0)
    assert zero.sigma(1e-12) == pytest.approx(1.0)


# --- one channel ---


def test_scalar_channel_skips_and_counts_nan_and_inf() -> None:
    channel = ChannelFeatures(window_s=10.0, baseline_samples=2)
    assert channel.kind is ChannelKind.SCALAR
    channel.add_value(T0, 1.0)
    for bad in (math.nan, math.inf, -math.inf):
        assert channel.add_value(T0 + 0.5, bad) == FeatureSnapshot()
    assert channel.add_value(math.nan, 1.0) == FeatureSnapshot()
    snapshot = channel.add_value(T0 + 1.0, 3.0)
    assert channel.rejected == 4
    assert snapshot.value == 3.0 and snapshot.mean == 2.0 and snapshot.peak == 3.0
    assert snapshot.rate_per_s == pytest.approx(2.0) and snapshot.bands is None
    assert snapshot.sigma is None  # the second value finished learning
    assert channel.add_value(T0 + 2.0, 2.0).sigma == pytest.approx(0.0)


def test_waveform_channel_drops_bad_samples_and_reports_block_features() -> None:
    channel = ChannelFeatures(window_s=10.0, baseline_samples=2, waveform=WaveformSettings(FS, BANDS))
    assert channel.kind is ChannelKind.WAVEFORM
    block = sine(2.0, 120.0, 1000)
    block[[3, 500]] = math.nan
    block[700] = -math.inf
    snapshot = channel.add_block(T0, block)
    assert channel.rejected == 3
    assert snapshot.rms == pytest.approx(math.sqrt(2), rel=0.01)
    assert snapshot.peak == pytest.approx(2.0, rel=5e-3) and snapshot.value is None
    assert snapshot.bands is not None and snapshot.bands["100-200Hz"] == pytest.approx(math.sqrt(2), rel=0.03)
    assert snapshot.mean == snapshot.rms and snapshot.rate_per_s is None
    assert channel.add_block(T0 + 1.0, np.array([])) == FeatureSnapshot()
    assert channel.add_block(T0 + 1.0, np.full(8, math.nan)) == FeatureSnapshot()
    assert channel.add_block(T0 + 1.0, np.ones((2, 2))) == FeatureSnapshot()
    assert channel.rejected == 3 + 8 + 4
    channel.add_block(T0 + 1.0, sine(2.0, 120.0, 1000))
    assert channel.add_block(T0 + 2.0, sine(6.0, 120.0, 1000)).sigma is not None


def test_a_channel_fed_the_wrong_kind_of_reading_says_so() -> None:
    with pytest.raises(TypeError, match="waveform channel"):
        ChannelFeatures(10.0, 2, WaveformSettings(FS)).add_value(T0, 1.0)
    with pytest.raises(TypeError, match="scalar channel"):
        ChannelFeatures(10.0, 2).add_block(T0, np.ones(4))


def garbage_block(rng: np.random.Generator) -> NDArray[np.float64]:
    size = int(rng.choice([0, 1, 2, 3, 4, int(rng.integers(5, 3000))]))
    # up to 1e300 times a normal draw: inf and near-limit values come only from the specials below
    block: NDArray[np.float64] = rng.normal(0.0, 1.0, size) * 10.0 ** rng.uniform(-320, 300)
    for special in (math.nan, math.inf, -math.inf, 1.7e308, -1.7e308, 5e-324, 0.0):
        if size and rng.random() < 0.15:
            block[rng.integers(0, size, int(rng.integers(1, size + 1)))] = special
    return block


def test_fuzz_never_raises_and_never_reports_nan() -> None:
    rng = np.random.default_rng(5)
    scalar = ChannelFeatures(window_s=1.0, baseline_samples=5)
    waveform = ChannelFeatures(window_s=1.0, baseline_samples=5, waveform=WaveformSettings(FS, BANDS))
    specials = [math.nan, math.inf, -math.inf, 1.7e308, -1.7e308, 5e-324, -5e-324, 0.0, 1e-300, 1e300]
    ts = T0
    for _ in range(500):
        ts = ts + float(rng.choice([0.0, 0.01, 0.3, 2.0, -100.0]))
        stamp = math.nan if rng.random() < 0.03 else ts
        value = specials[int(rng.integers(len(specials)))] if rng.random() < 0.4 else rng.normal(0, 1e3)
        assert no_nan(scalar.add_value(stamp, value))
        assert no_nan(waveform.add_block(stamp, garbage_block(rng)))
    assert scalar.rejected > 0 and waveform.rejected > 0
