"""The `store` section of `bench perf`:

- ingest_over_raw: readings/s through the store (Store.write from the event loop, the writer thread's
  batching, channel and class lookup, quota check) over raw sqlite3 executemany of the same rows, as
  ready-made tuples, into the same schema with the same pragmas and the same transaction size. The two
  take turns, each on a fresh file, and the medians are compared. Also reported: bytes handed to the
  file system per record (WAL frames and checkpoints; what wears an SD card).
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.config.models import StoreSettings
from appliance.records import Quality, Reading
from appliance.store import Store
from appliance.store.writer import connect

CHANNELS = 20  # a poll of a press controller: one reading per channel
BATCH = 2000  # the store's default batch_max, and the baseline's transaction size


def _polls(count: int) -> list[list[Reading]]:
    start = 1_795_000_000.0
    return [
        [
            Reading("press-1", f"channel_{c}", 20.0 + c + (p % 97) * 0.01, "u", start + p * 0.1, Quality.OK)
            for c in range(CHANNELS)
        ]
        for p in range(count)
    ]


async def _ours(folder: Path, polls: list[list[Reading]]) -> tuple[float, float]:
    store = Store(StoreSettings(batch_max=BATCH, commit_interval_ms=200), folder)
    await store.start()
    began = time.perf_counter()
    for poll in polls:  # one write a poll, as the runtime does, as fast as the event loop can
        store.write(poll)
    await store.stop()  # commits everything queued, then returns
    seconds = time.perf_counter() - began
    assert store.rows_committed == len(polls) * CHANNELS, "the store lost readings"
    return store.rows_committed / seconds, store.bytes_written / store.rows_committed


def _raw(folder: Path, polls: list[list[Reading]]) -> float:
    path = folder / "appliance.db"
    connect(path).conn.close()  # the same schema, made by our migrations
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    for c in range(CHANNELS):
        conn.execute(
            "INSERT INTO channels (device, channel, unit) VALUES ('press-1', ?, 'u')", (f"channel_{c}",)
        )
    rows = [(c + 1, r.ts, r.value, 0, 2) for poll in polls for c, r in enumerate(poll)]
    began = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO readings (channel_id, ts, value, quality, prio) VALUES (?, ?, ?, ?, ?)",
            rows[i : i + BATCH],
        )
        conn.execute("COMMIT")
    seconds = time.perf_counter() - began
    conn.close()
    return len(rows) / seconds


def run(quick: bool) -> dict[str, Any]:
    polls = _polls(2_000 if quick else 15_000)
    rounds = 2 if quick else 5
    ours, raw, written = [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            rate, per_record = asyncio.run(_ours(Path(a), polls))
            ours.append(rate)
            written.append(per_record)
            raw.append(_raw(Path(b), polls))
    ours_rate, raw_rate = statistics.median(ours), statistics.median(raw)
    return {
        "ingest_over_raw": round(ours_rate / raw_rate, 3),
        "figures": {
            "ingest_over_raw": {
                "measured": round(ours_rate),
                "baseline": round(raw_rate),
                "unit": "readings/s",
                "readings": len(polls) * CHANNELS,
                "rounds": rounds,
                "bytes_written_per_record": round(statistics.median(written), 1),
            }
        },
    }
