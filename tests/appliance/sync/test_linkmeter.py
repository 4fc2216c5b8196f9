"""The link meter on imitated links: the tier it settles to, how it holds still, how it probes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

import pytest

from appliance.sync.linkmeter import METERED_PROBE_S, PROBE_FIRST, PROBE_MAX, PROBE_MIN, PROBE_S, LinkMeter
from appliance.sync.tiers import KIB, MIB, LinkTier, TierThresholds

T = LinkTier
ROUND_S = 2.0  # between two rounds of traffic: hold_s (10 s) is five rounds
SMALL = 1 * KIB  # a critical batch of a few records: its time is about one RTT


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def start(clock: Clock, metered: bool = False, max_tier: T | None = None, **thresholds: float) -> LinkMeter:
    meter = LinkMeter(TierThresholds(**thresholds), metered, max_tier=max_tier, clock=clock)
    meter.connected()
    return meter


def took(nbytes: int, mbit: float, rtt_s: float) -> float:
    """How long a transfer takes on a link: one RTT plus the time the bytes need on the wire."""
    return rtt_s + nbytes * 8 / (mbit * 1e6)


def traffic(meter: LinkMeter, clock: Clock, mbits: Iterable[float], rtt_s: float, big: int = MIB) -> list[T]:
    """One round per goodput: a small transfer and a big one, then ROUND_S; the tier after each round."""
    tiers = []
    for mbit in mbits:
        meter.transfer(SMALL, took(SMALL, mbit, rtt_s))
        meter.transfer(big, took(big, mbit, rtt_s))
        clock.now += ROUND_S
        tiers.append(meter.tier())
    return tiers


def unmetered(clock: Clock) -> LinkMeter:
    """A meter settled on a 50 Mbit/s link with a 2 ms RTT; its last goodput sample is ROUND_S old."""
    meter = start(clock)
    assert traffic(meter, clock, [50.0] * 8, 0.002)[-1] is T.UNMETERED
    return meter


def changes(tiers: list[T]) -> int:
    return sum(a != b for a, b in itertools.pairwise(tiers))


@pytest.mark.parametrize("rtt_s", [0.002, 0.05])
@pytest.mark.parametrize(
    ("mbit", "metered", "settled"),
    [
        (1.0, False, T.MINIMAL),
        (10.0, False, T.CONSERVATIVE),
        (50.0, False, T.UNMETERED),
        (50.0, True, T.NORMAL),
    ],
)
def test_settles_to_the_tier_of_the_link_after_the_hold_time(
    clock: Clock, mbit: float, metered: bool, settled: T, rtt_s: float
) -> None:
    meter = start(clock, metered=metered)
    assert meter.tier() is T.MINIMAL  # until measured
    tiers = traffic(meter, clock, [mbit] * 30, rtt_s)
    assert tiers == [T.MINIMAL] * 4 + [settled] * 26  # the first 8 s are within the hold time
    assert meter.status()["goodput_mbit"] == pytest.approx(mbit, rel=0.02)


@pytest.mark.parametrize(("mbit", "settled", "steps"), [(10.0, T.CONSERVATIVE, 1), (1.0, T.MINIMAL, 2)])
def test_comes_back_down(clock: Clock, mbit: float, settled: T, steps: int) -> None:
    meter = unmetered(clock)
    tiers = traffic(meter, clock, [mbit] * 20, 0.05)
    assert tiers == sorted(tiers, reverse=True)  # never back up on the way down
    assert tiers[0] is T.UNMETERED and tiers[-8:] == [settled] * 8
    assert changes(tiers) == steps  # down to 1 Mbit/s through conservative, each step after the hold time


def test_alternating_around_a_threshold_does_not_flap(clock: Clock) -> None:
    assert changes(traffic(unmetered(clock), clock, [24.0, 26.0] * 100, 0.002)) == 0
    tiers = traffic(start(clock), clock, [24.0, 26.0] * 100, 0.002)
    assert changes(tiers) == 1 and tiers[-1] is T.CONSERVATIVE


@pytest.mark.parametrize(
    ("centre", "above", "below"), [(25.0, T.UNMETERED, T.CONSERVATIVE), (5.0, T.CONSERVATIVE, T.MINIMAL)]
)
def test_noise_around_a_threshold_does_not_flap(clock: Clock, centre: float, above: T, below: T) -> None:
    rng = random.Random(7)
    noisy = [centre * rng.uniform(0.85, 1.15) for _ in range(300)]
    for before, held in ((centre * 2, above), (centre / 2, below)):
        meter = start(clock)
        traffic(meter, clock, [before] * 10, 0.05)
        tiers = traffic(meter, clock, noisy, 0.05)
        assert changes(tiers) == 0 and tiers[-1] is held


@pytest.mark.parametrize("pattern", [[24.0, 26.0], [21.0, 29.0, 23.0, 27.5]])
def test_without_hysteresis_or_hold_the_same_link_flaps(clock: Clock, pattern: list[float]) -> None:
    """The control for the two tests above: they hold still because of the hysteresis and the hold time."""
    meter = start(clock, hysteresis=0.0, hold_s=0.0)
    assert changes(traffic(meter, clock, pattern * 50, 0.002)) > 50


def test_disconnect_is_offline_at_once(clock: Clock) -> None:
    assert LinkMeter(TierThresholds(), metered=False).tier() is T.OFFLINE
    meter = start(clock, hold_s=600.0)
    assert traffic(meter, clock, [50.0] * 400, 0.002)[-1] is T.UNMETERED
    meter.disconnected()
    assert meter.tier() is T.OFFLINE and meter.status()["since"] == 0


def test_reconnecting_soon_keeps_the_estimate_and_late_starts_over(clock: Clock) -> None:
    meter = unmetered(clock)
    meter.disconnected()
    clock.now += 57.9  # the last goodput sample is 59.9 s old: younger than probe_interval_s
    meter.connected()
    assert meter.tier() is T.UNMETERED and meter.probe_size() is None
    meter.disconnected()
    clock.now += 0.1
    meter.connected()
    assert meter.tier() is T.MINIMAL and meter.status()["samples"] == 0
    assert meter.status()["goodput_mbit"] is None and meter.status()["rtt_ms"] is None
    assert meter.probe_size() == PROBE_FIRST
    tiers = traffic(meter, clock, [10.0] * 8, 0.002)  # another link now: measured afresh
    assert tiers[-1] is T.CONSERVATIVE and T.UNMETERED not in tiers


@pytest.mark.parametrize(
    ("max_tier", "metered", "capped"),
    [
        (None, True, T.NORMAL),
        (T.CONSERVATIVE, False, T.CONSERVATIVE),
        (T.MINIMAL, True, T.MINIMAL),
    ],
)
def test_hints_cap_a_fast_link(clock: Clock, max_tier: T | None, metered: bool, capped: T) -> None:
    meter = start(clock, metered=metered, max_tier=max_tier)
    assert traffic(meter, clock, [100.0] * 10, 0.002)[-1] is capped and meter.status()["metered"] is metered


def test_max_tier_offline_is_refused() -> None:
    with pytest.raises(ValueError, match="never send"):
        LinkMeter(TierThresholds(), metered=False, max_tier=T.OFFLINE)


def test_small_transfers_are_rtt_samples_not_goodput(clock: Clock) -> None:
    meter = start(clock)
    for _ in range(100):
        meter.transfer(SMALL, took(SMALL, 50.0, 0.05))
        meter.transfer(15 * KIB, took(15 * KIB, 50.0, 0.05))
        clock.now += 1.0
    status = meter.status()
    assert (status["goodput_mbit"], status["samples"], meter.tier()) == (None, 0, T.MINIMAL)
    assert status["rtt_ms"] == pytest.approx(51.3, abs=0.5)
    traffic(meter, clock, [50.0] * 3, 0.05)
    meter.transfer(256 * KIB, took(256 * KIB, 50.0, 0.05))  # one RTT carries 312 kB on this link
    assert meter.status()["samples"] == 3
    meter.transfer(512 * KIB, took(512 * KIB, 50.0, 0.05))
    assert meter.status()["samples"] == 4


def test_without_rtt_samples_the_goodput_errs_low(clock: Clock) -> None:
    meter = start(clock)
    seconds = took(256 * KIB, 10.0, 0.05)
    meter.transfer(256 * KIB, seconds)
    assert meter.status()["goodput_mbit"] == pytest.approx(256 * KIB * 8 / seconds / 1e6, rel=1e-3)  # 8.1
    clock.now += 60.0  # a probe lasting PROBE_S at that estimate
    assert meter.probe_size() == pytest.approx(256 * KIB / seconds * PROBE_S, abs=1)


def test_failures_in_a_row_step_the_tier_down_at_once(clock: Clock) -> None:
    meter = unmetered(clock)
    steps = []
    for _ in range(12):
        steps.append(meter.tier())
        meter.failure()
    assert steps == [T.UNMETERED] * 3 + [T.NORMAL] * 3 + [T.CONSERVATIVE] * 3 + [T.MINIMAL] * 3
    assert meter.tier() is T.MINIMAL and meter.status()["failures"] == 12
    climbing = start(clock)
    traffic(climbing, clock, [50.0], 0.002)  # unmetered is wanted, the hold time is not over yet
    for _ in range(3):
        climbing.failure()
    clock.now += 60.0
    assert climbing.tier() is T.MINIMAL


def test_only_failures_in_a_row_while_connected_step_down(clock: Clock) -> None:
    meter = unmetered(clock)
    meter.failure()
    meter.failure()
    meter.transfer(SMALL, 0.002)  # a completed transfer ends the streak
    meter.failure()
    meter.failure()
    assert meter.tier() is T.UNMETERED
    meter.disconnected()  # the failures were the drop coming: the streak and its step end with it
    for _ in range(6):
        meter.failure()
    meter.connected()
    meter.failure()
    assert meter.tier() is T.UNMETERED
    for _ in range(3):
        meter.failure()
    meter.disconnected()
    meter.connected()
    assert meter.tier() is T.UNMETERED and meter.status()["failures"] == 14


def test_after_failures_only_new_goodput_lifts_the_tier_again(clock: Clock) -> None:
    meter = unmetered(clock)
    for _ in range(3):
        meter.failure()
    for _ in range(30):  # acknowledgements, but nothing that measures the link
        meter.transfer(SMALL, 0.002)
        clock.now += 1.0
    assert meter.tier() is T.NORMAL
    tiers = traffic(meter, clock, [50.0] * 8, 0.002)
    assert tiers[:4] == [T.NORMAL] * 4 and tiers[-1] is T.UNMETERED


def test_probes_are_due_when_nothing_measured_the_link_for_an_interval(clock: Clock) -> None:
    meter = start(clock)
    assert meter.probe_size() == PROBE_FIRST
    assert meter.probe_size() is None  # the answer counts as the probe sent
    clock.now += 59.9
    assert meter.probe_size() is None
    clock.now += 0.1
    assert meter.probe_size() == PROBE_FIRST  # the first was lost: still nothing measured
    meter.disconnected()
    clock.now += 120.0
    assert meter.probe_size() is None


def test_real_traffic_that_measures_the_link_makes_probes_unneeded(clock: Clock) -> None:
    meter = start(clock)
    assert meter.probe_size() == PROBE_FIRST
    for _ in range(100):
        traffic(meter, clock, [10.0], 0.05)
        assert meter.probe_size() is None
    clock.now += 60.0 - ROUND_S - 0.1  # since the last goodput sample: just under probe_interval_s
    assert meter.probe_size() is None
    clock.now += 0.1
    assert meter.probe_size() is not None


@pytest.mark.parametrize(
    ("mbit", "rtt_s", "size"),
    [
        (10.0, 0.05, 10e6 / 8 * PROBE_S),  # a quarter second at 10 Mbit/s
        (4.0, 0.01, 4e6 / 8 * PROBE_S),
        (1.0, 0.002, PROBE_MIN),
        (50.0, 0.002, PROBE_MAX),
    ],
)
def test_a_probe_lasts_a_quarter_second_at_the_estimate(
    clock: Clock, mbit: float, rtt_s: float, size: float
) -> None:
    meter = start(clock)
    traffic(meter, clock, [mbit] * 5, rtt_s, big=4 * MIB)
    clock.now += 60.0
    assert meter.probe_size() == pytest.approx(size, rel=0.02)


def test_a_link_that_got_slower_is_probed_small_first(clock: Clock) -> None:
    meter = start(clock)
    traffic(meter, clock, [50.0] * 5, 0.002, big=4 * MIB)  # 50 Mbit/s, 2 ms
    for _ in range(8):  # the link is now 1 Mbit/s: small transfers queue behind each other
        meter.transfer(SMALL, 0.5)
    clock.now += 60.0
    assert meter.status()["goodput_mbit"] > 40  # the estimate has not heard of it yet
    assert meter.probe_size() == PROBE_MIN  # so the probe does not hold the slow link for seconds


def test_a_metered_link_probes_rarely_and_small(clock: Clock) -> None:
    meter = start(clock, metered=True)
    assert meter.probe_size() == PROBE_MIN  # never measured at all
    traffic(meter, clock, [10.0], 0.05)
    clock.now += METERED_PROBE_S - ROUND_S - 1.0
    assert meter.probe_size() is None
    clock.now += 1.0
    assert meter.probe_size() == PROBE_MIN


def test_status_reports_the_estimate(clock: Clock) -> None:
    meter = LinkMeter(TierThresholds(), metered=False, link_kind="wifi", clock=clock)
    meter.connected()
    traffic(meter, clock, [10.0] * 8, 0.05)
    meter.failure()
    assert meter.status() == {
        "tier": "conservative",
        "goodput_mbit": pytest.approx(10.0, abs=0.02),
        "rtt_ms": pytest.approx(50.8, abs=0.1),
        "samples": 8,
        "since": 6.0,  # the change came 10 s after the first round
        "metered": False,
        "link": "wifi",
        "failures": 1,
    }
