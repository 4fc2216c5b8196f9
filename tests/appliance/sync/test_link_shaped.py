"""The link tier follows a real shaped link: a token bucket at 1, 10 and 50 Mbit/s on a veth pair between
the appliance and a broker in its own network namespace, and back down again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.netshape import NetShapeUnavailable, ShapedLink
from bench.upstream.broker import find_mosquitto
from bench.upstream.rig import RigSettings, SyncRig

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_mosquitto() is None, reason="needs mosquitto (./dev test installs it when root)"),
]

# Quick to decide, so the test is short; the hysteresis and the hold still apply.
THRESHOLDS = "[sync.thresholds]\nhold_s = 2.0\nprobe_interval_s = 1.0\n"


STEPS = [(1, "minimal"), (10, "conservative"), (50, "unmetered"), (10, "conservative"), (1, "minimal")]
BANDS = {"minimal": (0.0, 6.0), "conservative": (4.0, 30.0), "unmetered": (20.0, float("inf"))}  # Mbit/s


def measured(sync: dict[str, Any], tier: str) -> bool:
    """In `tier`, on a goodput measured on this link that belongs there (not the tier it starts in)."""
    low, high = BANDS[tier]
    return sync["tier"] == tier and sync["goodput_mbit"] is not None and low <= sync["goodput_mbit"] <= high


def test_tier_follows_the_shaped_link_up_and_down(tmp_path: Path) -> None:
    try:
        link = ShapedLink()
    except NetShapeUnavailable as exc:
        pytest.skip(str(exc))
    seen: list[tuple[float, str, float | None]] = []
    with link:
        settings = RigSettings(
            broker_host=link.upstream_ip, netns_prefix=link.exec_prefix, extra_sync=THRESHOLDS, interval_s=1.0
        )
        with SyncRig(tmp_path, settings) as rig:
            runtime = rig.start()
            try:
                for mbit, tier in STEPS:
                    link.rate(mbit)
                    sync = rig.wait(runtime, lambda s, t=tier: measured(s, t), 60, f"{tier} at {mbit} Mbit/s")
                    seen.append((mbit, sync["tier"], sync["goodput_mbit"]))
            finally:
                rig.stop(runtime)
            rig.drain()
            found = rig.account()
    assert [t for _, t, _ in seen] == [t for _, t in STEPS], seen
    assert found["delivered_unique_over_produced"] == 1.0, found
