"""What the store writes to the SD card: a bound per reading for a minute of the bench world, counted from
the WAL so that it is the same on every run; and what the journal keeps through a killed process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from appliance.config.models import StoreSettings
from appliance.records import Event, Quality, Reading, Severity
from appliance.store import Store
from tests.appliance.test_store import until
from tests.conftest import ROOT

BLOCK = 4096  # what the page cache, and so a checkpoint, writes a file in
# examples/bench.toml's channels as they reach the store, by how their values look
CHANNELS = (
    [("press-1", "oil_temperature", "float32"), ("flow-3", "flow", "float32")]
    + [("tank-1", "level", "float32"), ("tank-2", "level", "float32")]
    + [("press-1", "hydraulic_pressure", "tenths"), ("tank-1", "temperature", "tenths")]
    + [("tank-2", "temperature", "tenths"), ("press-1", "motor_current", "hundredths")]
    + [("press-1", "stroke_count", "counter"), ("press-1", "pump_running", "bool")]
    + [("press-1", "serial_number", "text"), ("air", "temperature", "text2"), ("air", "pressure", "text1")]
    + [("air", "humidity", "text1")]
    + [
        ("press-1", f"bearing_vibration.{f}", "feature")
        for f in ("rms", "peak", "band_10-60Hz", "band_60-200Hz")
    ]
    + [("press-1", f"{c}.rate", "feature") for c in ("oil_temperature", "hydraulic_pressure")]
    + [("flow-3", "flow.rate", "feature"), ("flow-3", "flow.sigma", "feature")]
    + [("press-1", "bearing_vibration.band_200-500Hz", "feature")]
    + [("press-1", "oil_temperature.sigma", "feature"), ("press-1", "bearing_vibration.sigma", "feature")]
)


def value(kind: str, rng: random.Random, second: int) -> float | str:
    if kind == "float32":
        return float(struct.unpack("f", struct.pack("f", 40 + rng.gauss(0, 2)))[0])
    if kind == "tenths":
        return rng.randrange(1800, 2100) * 0.1  # a driver's raw * 0.1
    if kind == "hundredths":
        return rng.randrange(1200, 1300) * 0.01
    if kind == "counter":
        return float(1_200_000 + second // 2)
    if kind == "bool":
        return float(second % 20 < 16)
    if kind == "text":
        return "PX-2207-0419"
    if kind in ("text1", "text2"):  # the serial sensor's "21.73", parsed
        return float(f"{rng.uniform(20, 1000):.{kind[-1]}f}")
    return float(f"{rng.lognormvariate(0, 1):.6g}")  # features keep six digits


def poll(rng: random.Random, second: int, half: int) -> list[Reading]:
    """One half second's polls: the fast channels twice a second, the RS-485 meters once."""
    ts = 1_795_000_000 + second + half / 2
    return [
        Reading(device, channel, value(kind, rng, second), "u", ts + rng.uniform(0, 0.004), Quality.OK)
        for device, channel, kind in CHANNELS
        if half == 0 or device not in ("tank-1", "tank-2")
    ]


def defect(second: int, severity: Severity) -> Event:
    name = f"20261204T{second:06d}_scratch"
    data = {"label": "scratch", "confidence": 0.91, "thumbnail": f"{name}.thumb.jpg", "image": f"{name}.jpg"}
    return Event(1_795_000_000 + second, "qc.defect", severity, "qc", "scratch, confidence 0.91", data)


def wal(db: Path) -> tuple[bytes, int, list[int]]:
    """The WAL's salt, page size and the page number of each committed frame (the file read as a file: the
    runtime's connection keeps the database to itself)."""
    data = (db.parent / (db.name + "-wal")).read_bytes()
    size, salt = int.from_bytes(data[8:12], "big"), data[16:24]
    pages, committed = [], 0
    for at in range(32, len(data) - 24 - size + 1, 24 + size):
        if data[at + 8 : at + 16] != salt:
            break
        pages.append(int.from_bytes(data[at : at + 4], "big"))
        if int.from_bytes(data[at + 4 : at + 8], "big"):
            committed = len(pages)
    return salt, size, pages[:committed]


def test_a_minute_of_the_bench_world_writes_at_most_64_bytes_a_reading(tmp_path: Path) -> None:
    """A minute of what the bench world of examples/bench.toml hands the store (some 45 readings a second
    over 26 channels, a QC warning every 5 s, a critical reject every 15 s), flushed every 20 s as the
    default settings do: every WAL frame SQLite writes, and every 4 KiB block of the database a
    checkpoint will write for them (once each, an upper bound), come to at most 64 bytes a reading. The
    test says when commits happen (the interval is far away; call() flushes), so the count is the same
    on every run; the journal is kept in RAM and costs the card nothing."""
    store = Store(StoreSettings(commit_interval_ms=60_000), tmp_path)
    rng = random.Random(11)
    path = tmp_path / "appliance.db"

    async def minute() -> tuple[int, list[int], int]:
        await store.start()
        flushed = store.call(lambda conn: conn.execute("PRAGMA wal_autocheckpoint = 0"))
        await asyncio.to_thread(flushed.result, 5)  # every frame stays in the WAL to be counted
        salt, size, before = wal(path)
        readings = 0
        for second in range(60):
            for half in (0, 1):
                records = poll(rng, second, half)
                store.write(records)
                readings += len(records)
            if second % 5 == 4:
                store.write([defect(second, Severity.WARNING)])
            if second % 15 == 14:
                events = store.events_committed + 1
                store.write([defect(second, Severity.CRITICAL)])  # committed at once
                await until(functools.partial(lambda n: store.events_committed >= n, events), 10)
            if second % 20 == 19:
                await asyncio.to_thread(store.call(lambda conn: None).result, 5)  # a flush
        after = wal(path)
        await store.stop()
        assert after[0] == salt, "SQLite started the WAL over: frames went uncounted"
        return size, after[2][len(before) :], readings

    size, frames, readings = asyncio.run(minute())
    assert store.rows_committed == readings > 2600
    blocks = {(page - 1) * size // BLOCK for page in frames}
    written = len(frames) * (24 + size) + len(blocks) * BLOCK
    assert written / readings <= 64, (len(frames), len(blocks), round(written / readings, 1))


WRITER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from appliance.config.models import StoreSettings
    from appliance.records import Event, Quality, Reading, Severity
    from appliance.store import Store

    async def main():
        store = Store(StoreSettings(commit_interval_ms=10, flush_interval_s=3600), Path(sys.argv[1]))
        await store.start()
        i = 0
        while True:
            store.write([Reading("dev", "x", float(j), "", float(j), Quality.OK) for j in range(i, i + 50)])
            store.write([Event(float(i), "qc.defect", Severity.WARNING, "qc", str(i), {"image": f"{i}.jpg"})])
            i += 50
            await asyncio.sleep(0.002)
            held = store.status().held_records
            print(store.rows_committed, held, store.events_committed, flush=True)

    asyncio.run(main())
""")


def test_what_the_journal_holds_outlives_a_killed_process_and_goes_in_once(tmp_path: Path) -> None:
    """Records committed to the journal are not in the database yet (after the first commit, which a
    start flushes at once, the next flush is an hour away), survive SIGKILL, and the next start puts each
    of them into the database exactly once."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    rows = held = events = 0
    deadline = time.monotonic() + 20
    for line in proc.stdout:
        rows, held, events = map(int, line.split())
        if held >= 5000 or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert held >= 5000 and events >= 50  # the first commit went in at once, the rest waits
    with contextlib.closing(sqlite3.connect(tmp_path / "appliance.db")) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == rows < held
    store = Store(StoreSettings(), tmp_path)

    async def reopen() -> None:
        await store.start()
        await store.stop()

    asyncio.run(reopen())
    with contextlib.closing(sqlite3.connect(tmp_path / "appliance.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, distinct, top = conn.execute(
            "SELECT count(*), count(DISTINCT value), max(value) FROM readings"
        ).fetchone()
        kept_events = conn.execute("SELECT count(*), count(DISTINCT message) FROM events").fetchone()
        evidence = conn.execute("SELECT count(*) FROM evidence").fetchone()[0]
    assert count >= rows + held * 0.9 and count == distinct == top + 1  # each once, whole frames
    assert kept_events[0] == kept_events[1] >= events and evidence == kept_events[0]


def test_events_in_the_journal_are_listed_at_once_and_once_after_the_flush(tmp_path: Path) -> None:
    store = Store(StoreSettings(commit_interval_ms=5, flush_interval_s=3600), tmp_path)

    async def run() -> tuple[list[int], list[int], list[int], list[str]]:
        await store.start()
        store.write([defect(1, Severity.WARNING), defect(2, Severity.CRITICAL), defect(3, Severity.INFO)])
        await until(lambda: store.events_committed == 3, 10)
        held = [e["id"] for e in store.events_since(0)]
        page = [e["id"] for e in store.events_since(0, limit=2)]
        await asyncio.to_thread(store.call(lambda conn: None).result, 5)  # the flush
        flushed = [e["id"] for e in store.events_since(0)]
        newest = [e["message"] for e in store.recent_events("qc.", 2)]
        await store.stop()
        return held, page, flushed, newest

    held, page, flushed, newest = asyncio.run(run())
    assert held == [1, 2, 3] == flushed and page == [1, 2]  # the critical one went in first, in between
    assert len(newest) == 2
    with contextlib.closing(sqlite3.connect(tmp_path / "appliance.db")) as conn:
        rows = conn.execute("SELECT id, severity, data FROM events ORDER BY id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(1, "warning"), (2, "critical"), (3, "info")]
    assert json.loads(rows[0][2])["thumbnail"] == "20261204T000001_scratch.thumb.jpg"


def test_numbers_marshal_does_not_take_are_journaled_as_plain_ones(tmp_path: Path) -> None:
    """A driver or a feature may hand numpy numbers: the journal keeps them as Python floats."""
    store = Store(StoreSettings(commit_interval_ms=5), tmp_path)
    values = [np.float32(1.5), np.float64(2.25), np.int64(7), True]

    async def run() -> None:
        await store.start()
        store.write([Reading("dev", f"c{i}", v, "", 1.0 + i, Quality.OK) for i, v in enumerate(values)])  # type: ignore[arg-type]
        await until(lambda: store.status().held_records == 0 and store.rows_committed == 4, 10)
        await store.stop()

    asyncio.run(run())
    assert store.status().journal_errors == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "appliance.db")) as conn:
        assert conn.execute("SELECT value FROM readings ORDER BY id").fetchall() == [
            (1.5,),
            (2.25,),
            (7.0,),
            (1.0,),
        ]
