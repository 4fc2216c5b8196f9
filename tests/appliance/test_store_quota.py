"""The store's classes, outbox cursor and disk quota, on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import sqlite3
from pathlib import Path

from appliance.config.models import StoreSettings
from appliance.config.sync import ClassSettings
from appliance.records import Event, Priority, Quality, Reading, Severity
from appliance.store import Store, outbox
from appliance.store.outbox import Batch

CLASSES = ClassSettings(
    sensors={"dev.crit": "critical", "dev.bg*": "background"},
    event_kinds={"estop.*": "critical"},
    events={"info": "background"},
)


def settings(quota_mb: float = 1024.0) -> StoreSettings:
    return StoreSettings(commit_interval_ms=5, batch_max=5000, quota_mb=quota_mb, classes=CLASSES)


def rows(channel: str, n: int, first: int = 0) -> list[Reading]:
    """Values 0, 1, 2, ... a second apart, each stamp off by up to a second (a busy poller), so that a
    reading takes some bytes even packed."""
    jitter = random.Random(f"{channel}{first}")
    return [
        Reading("dev", channel, float(i), "u", 1_700_000_000.0 + i + jitter.random(), Quality.OK)
        for i in range(first, first + n)
    ]


def counts(path: Path) -> dict[tuple[str, int], int]:
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT c.channel, r.prio, count(*) FROM readings r JOIN channels c"
            " ON c.id = r.channel_id GROUP BY 1, 2"
        ).fetchall()
    return {(c, p): n for c, p, n in found}


async def fill(store: Store, per_channel: int, channels: tuple[str, ...]) -> None:
    for i in range(0, per_channel, 500):
        for channel in channels:
            store.write(rows(channel, min(500, per_channel - i), i))
        await asyncio.sleep(0.01)


def test_records_get_their_class(tmp_path: Path) -> None:
    store = Store(settings(), tmp_path)

    async def run() -> None:
        await store.start()
        store.write(rows("crit", 3) + rows("bg.vibration", 3) + rows("temp", 3))
        store.write(
            [
                Event(1.0, "estop.reset", Severity.INFO, "api", "reset"),
                Event(2.0, "qc.defect", Severity.WARNING, "qc", "scratch"),
                Event(3.0, "service.restart", Severity.INFO, "svc", "restarted"),
                Event(4.0, "qc.defect", Severity.CRITICAL, "qc", "crack"),
            ]
        )
        await store.stop()

    asyncio.run(run())
    assert counts(store.path) == {("crit", 0): 3, ("bg.vibration", 3): 3, ("temp", 2): 3}
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT kind, prio FROM events ORDER BY id").fetchall() == [
            ("estop.reset", 0),
            ("qc.defect", 1),
            ("service.restart", 3),
            ("qc.defect", 0),
        ]
        assert len(outbox.store_id(conn)) == 16


def test_a_critical_record_is_committed_without_waiting(tmp_path: Path) -> None:
    slow = StoreSettings(commit_interval_ms=5000, classes=CLASSES)
    store = Store(slow, tmp_path)
    seen: list[bool] = []

    async def run() -> None:
        await store.start()
        store.listeners.append(seen.append)
        store.write(rows("crit", 1))
        for _ in range(100):
            if store.rows_committed:
                break
            await asyncio.sleep(0.01)
        assert store.rows_committed == 1, "a critical reading waited for the 5 s commit interval"
        await store.stop()

    asyncio.run(run())
    assert seen == [True]


def test_quota_thins_background_first_and_never_critical(tmp_path: Path) -> None:
    store = Store(settings(quota_mb=0.15), tmp_path)

    async def run() -> None:
        await store.start()
        await fill(store, 12000, ("crit", "bg.a", "temp"))
        await store.stop()

    asyncio.run(run())
    found = counts(store.path)
    assert found[("crit", 0)] == 12000, "critical readings were evicted"
    assert found[("bg.a", 3)] < 6000 and found[("bg.a", 3)] < found.get(("temp", 2), 0), found
    assert store.evicted.get("readings.background.thinned", 0) == 12000 - found[("bg.a", 3)]
    assert store.used_bytes <= 0.15e6
    with sqlite3.connect(store.path) as conn:
        thinned = outbox.cursor(conn, "readings", Priority.BACKGROUND).thinned
        # thinned rows are every other one: the oldest survivors are evenly spaced, the newest is kept
        values = [
            v
            for (v,) in conn.execute(
                "SELECT value FROM readings r JOIN channels c ON c.id = r.channel_id"
                " WHERE c.channel = 'bg.a' ORDER BY r.id"
            )
        ]
    assert thinned == store.evicted["readings.background.thinned"]
    assert values[-1] == 11999.0 and values[1] - values[0] >= 2


def test_quota_takes_delivered_records_before_thinning_any(tmp_path: Path) -> None:
    store = Store(settings(quota_mb=0.066), tmp_path)  # above the first 6000 readings, below 8000

    async def run() -> None:
        await store.start()
        await fill(store, 3000, ("temp", "bg.a"))
        await asyncio.to_thread(store.call(lambda conn: None).result, 5)  # everything in the database
        # mark everything so far as sent and acknowledged, the way the sync service does
        for prio in (Priority.NORMAL, Priority.BACKGROUND):
            with contextlib.closing(store.reader()) as conn:
                was = outbox.cursor(conn, "readings", prio)
                last = conn.execute("SELECT max(id) FROM readings WHERE prio = ?", (int(prio),)).fetchone()[0]
            batch = Batch("readings", prio, was.next_seq, 1, last, 1, 0.0, b"x")
            assert store.call(functools.partial(outbox.add_batch, batch=batch, was=was)).result(5)
            store.call(functools.partial(outbox.remove_batch, key=batch.key)).result(5)
        await fill(store, 1000, ("temp", "bg.a"))
        await store.stop()

    asyncio.run(run())
    assert store.evicted.get("readings.background.delivered", 0) > 0
    assert store.evicted["readings.background.delivered"] > store.evicted.get("readings.normal.delivered", 0)
    assert "readings.background.thinned" not in store.evicted
    assert "readings.normal.thinned" not in store.evicted
