"""Sync against a real mosquitto through faults: nothing produced is lost, duplicates stay within the
at-least-once bound (max_inflight batches per interruption), and order holds within each class."""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import time
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


KILLS = 100


def assert_all_delivered(rig: SyncRig, interruptions: int) -> dict[str, Any]:
    """Every record the store ever held arrived (or was thinned and said so), once per interruption at most
    a window of duplicates, nothing out of order, no sequence number missing."""
    found = rig.account()
    assert found["delivered_unique_over_produced"] == 1.0, found
    assert found["streams"]["readings"]["produced"] > 0 and not found["thinned_by_class"], found
    assert found["missing_seqs"] == 0 and found["order_violations"] == 0 and found["bad_batches"] == 0, found
    assert found["duplicate_batches"] <= (interruptions + 1) * rig.settings.max_inflight, found
    return found


def test_broker_down_while_data_keeps_coming(tmp_path: Path) -> None:
    with SyncRig(tmp_path) as rig:
        runtime = rig.start()
        rig.wait(runtime, lambda s: s["records_acked"] > 50, 20, "first records acknowledged")
        rig.broker.stop()
        down = rig.wait(runtime, lambda s: s["tier"] == "offline", 20, "offline once the broker is gone")
        time.sleep(60)  # a minute of production with nowhere to send it
        during = rig.wait(runtime, lambda s: True, 1, "status")
        assert during["records_acked"] - down["records_acked"] < 20, (down, during)  # nothing to send to
        assert sum(during["backlog"].values()) > 3000, during  # ~80 readings/s kept, not sent
        rig.broker.start()
        rig.wait(runtime, caught_up, 90, "backlog sent")
        rig.stop(runtime)
        rig.drain()
        found = assert_all_delivered(rig, interruptions=1)
    assert found["streams"]["readings"]["produced"] > 4000  # ~80 readings/s for over a minute


def caught_up(sync: dict[str, Any]) -> bool:
    return sync["tier"] != "offline" and all(age is None or age < 5 for age in sync["oldest_s"].values())


def test_runtime_killed_in_the_middle_of_a_sync_again_and_again(tmp_path: Path) -> None:
    kills = KILLS
    rng = random.Random(7)
    with SyncRig(tmp_path, RigSettings(interval_s=0.1)) as rig:
        inflight_at_kill = []
        for i in range(kills):
            runtime = rig.start()
            rig.wait(runtime, lambda s: s["batches_sent"] > 0, 20, "sending")
            if i % 2:  # at a random moment
                time.sleep(rng.uniform(0.0, 0.6))
                inflight = runtime.get("api/v1/status")["sync"]["inflight"]
            else:  # surely mid-sync: the broker hangs, so batches are sent and wait for their acknowledgement
                rig.broker.pause()
                # killed right after the status that shows them in flight: a second status request in
                # between saw none in 2 of 50 paused rounds in one CI run (most likely put back at the
                # acknowledgement timeout), and this count below fell short
                inflight = rig.wait(runtime, lambda s: s["inflight"] > 0, 10, "a batch in flight")["inflight"]
            inflight_at_kill.append(inflight)
            rig.stop(runtime, signal.SIGKILL)
            rig.broker.resume()
        rig.drain()
        found = assert_all_delivered(rig, interruptions=kills)
    # the kills did land mid-sync: often with batches sent and not yet acknowledged
    assert sum(1 for n in inflight_at_kill if n) >= kills // 2, inflight_at_kill
    assert found["streams"]["readings"]["produced"] > kills * 20


def test_link_flapping_every_few_seconds(tmp_path: Path) -> None:
    try:
        link = ShapedLink()
    except NetShapeUnavailable as exc:
        pytest.skip(str(exc))
    with link:
        settings = RigSettings(broker_host=link.upstream_ip, netns_prefix=link.exec_prefix)
        with SyncRig(tmp_path, settings) as rig:
            runtime = rig.start()
            rig.wait(runtime, lambda s: s["records_acked"] > 50, 20, "first records acknowledged")
            flaps = 6
            link.flap(period_s=6.0, count=flaps)  # 3 s down, 3 s up
            deadline = time.monotonic() + 60
            while link.flapping and time.monotonic() < deadline:
                rig.wait(runtime, lambda s: True, 1, "status")  # the runtime keeps serving meanwhile
                time.sleep(0.5)
            link.stop_flap()
            rig.wait(runtime, caught_up, 90, "backlog sent")
            rig.stop(runtime)
            rig.drain()
            assert_all_delivered(rig, interruptions=flaps)


def test_quota_reached_while_the_broker_is_down(tmp_path: Path) -> None:
    with SyncRig(tmp_path, RigSettings(quota_mb=0.2, poll_interval_s=0.02)) as rig:
        runtime = rig.start()
        rig.wait(runtime, lambda s: s["records_acked"] > 50, 20, "first records acknowledged")
        rig.broker.stop()
        status: dict[str, Any] = {}
        thinned: dict[str, int] = {}
        deadline = time.monotonic() + 150  # packed readings: the 0.2 MB take about a minute here
        while not thinned.get("readings.background.thinned") and time.monotonic() < deadline:
            time.sleep(0.5)
            status = runtime.get("api/v1/status")
            thinned = status["services"]["store"]["evicted"]
        assert thinned.get("readings.background.thinned"), status["services"]["store"]
        rig.broker.start()
        rig.wait(runtime, caught_up, 90, "backlog sent")
        rig.stop(runtime)
        rig.drain()
        found = rig.account()
        with contextlib.closing(sqlite3.connect(rig.data / "appliance.db")) as conn:
            critical = conn.execute("SELECT count(*) FROM readings WHERE prio = 0").fetchone()[0]
    # every record arrived or was thinned and reported so; critical and important ones all arrived
    assert found["accounted_over_produced"] == 1.0, found
    assert set(found["thinned_by_class"]) <= {"readings.background", "readings.normal"}, found
    assert found["unique_by_class"]["readings.critical"] == critical > 0, found
    assert found["missing_seqs"] == 0 and found["order_violations"] == 0, found


def test_reject_evidence_arrives_byte_for_byte_through_kills(tmp_path: Path) -> None:
    kills = 4
    rng = random.Random(3)
    with SyncRig(tmp_path, RigSettings(camera=True)) as rig:
        for _ in range(kills):
            runtime = rig.start()
            rig.wait(runtime, lambda s: s["records_acked"] > 0, 30, "sending")
            time.sleep(rng.uniform(3.0, 6.0))  # rejects seen, their files written and sent meanwhile
            rig.stop(runtime, signal.SIGKILL)
        rig.drain(timeout=90)  # a file the kill kept from being written counts as thinned after 30 s
        found = rig.account()
        with contextlib.closing(sqlite3.connect(rig.data / "appliance.db")) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM evidence ORDER BY id")]
    evidence = found["streams"]["evidence"]
    assert evidence["produced"] == len(names) > 20, found  # thumbnails and frames of the rejects
    assert found["accounted_over_produced"] == 1.0, found
    assert evidence["thinned"] <= 2 * kills, found  # at most a reject's two files per kill
    assert found["missing_seqs"] == 0 and found["order_violations"] == 0 and found["bad_batches"] == 0
    received = {p.name: p.read_bytes() for p in (rig.received / "sync-box").iterdir()}
    assert len(received) == evidence["delivered_unique"] and set(received) <= set(names)
    kept = rig.data / "evidence"
    assert all(data == (kept / name).read_bytes() for name, data in received.items()), "files differ"
    assert {"evidence.important", "evidence.background"} <= set(found["unique_by_class"]), found
