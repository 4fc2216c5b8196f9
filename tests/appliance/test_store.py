"""The SQLite store: schema, batched commits, reopening, and readings that survive SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils

from appliance.config.models import StoreSettings
from appliance.records import Quality, Reading
from appliance.store import Store
from appliance.store.migrations import SCHEMA_VERSION, SchemaTooNew
from appliance.store.writer import connect
from tests.conftest import ROOT


def readings(n: int, start: int = 0, channel: str = "temp") -> list[Reading]:
    return [
        Reading("dev", channel, float(i), "degC", 1_700_000_000 + i, Quality.OK)
        for i in range(start, start + n)
    ]


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {seconds:.0f} s")


async def write_and_close(store: Store, batches: list[list[Reading]]) -> None:
    await store.start()
    for batch in batches:
        store.write(batch)
    await store.stop()


def test_schema_wal_and_every_reading_committed_on_stop(tmp_path: Path) -> None:
    store = Store(StoreSettings(commit_interval_ms=20, batch_max=500), tmp_path / "data")
    asyncio.run(
        write_and_close(
            store,
            [readings(300, i * 300) for i in range(10)]
            + [[Reading("dev", "alarm", None, "", 1.0, Quality.ERROR)]],
        )
    )
    assert store.rows_committed == 3001
    assert store.commits >= 6  # batch_max 500 splits 3001 rows
    db = sqlite_utils.Database(tmp_path / "data" / "appliance.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db["readings"].count == 3001
    assert db.execute(
        "SELECT min(value), max(value) FROM readings r JOIN channels c ON c.id = r.channel_id"
        " WHERE c.channel = 'temp'"
    ).fetchone() == (0.0, 2999.0)
    assert db.execute(
        "SELECT value, quality FROM readings r JOIN channels c ON c.id = r.channel_id"
        " WHERE c.channel = 'alarm'"
    ).fetchone() == (None, 2)
    assert [r["channel"] for r in db["channels"].rows] == ["temp", "alarm"]


def test_reopening_keeps_rows_and_channel_ids(tmp_path: Path) -> None:
    settings = StoreSettings(commit_interval_ms=5)
    asyncio.run(write_and_close(Store(settings, tmp_path), [readings(10)]))
    second = Store(settings, tmp_path)
    asyncio.run(write_and_close(second, [readings(5, 10), readings(2, channel="other")]))
    db = sqlite_utils.Database(tmp_path / "appliance.db")
    assert db["readings"].count == 17
    assert db.execute("SELECT count(*) FROM channels").fetchone()[0] == 2
    assert db.execute("SELECT max(id) FROM readings").fetchone()[0] == 17


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "appliance.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match="this release knows up to"):
        connect(path)
    assert path.read_bytes() == before


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("appliance.store.writer.MAX_PENDING_RECORDS", 6)
    store = Store(StoreSettings(), tmp_path)  # not started: nothing drains the queue
    for _ in range(4):
        store.write(readings(3))
    assert store.dropped == 6
    assert store.status().pending_records == 6


WRITER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from appliance.config.models import StoreSettings
    from appliance.records import Quality, Reading
    from appliance.store import Store

    async def main():
        store = Store(StoreSettings(commit_interval_ms=10), Path(sys.argv[1]))
        await store.start()
        i = 0
        while True:
            store.write([Reading("dev", "x", float(j), "", float(j), Quality.OK) for j in range(i, i + 50)])
            i += 50
            await asyncio.sleep(0.002)
            print(store.rows_committed, flush=True)

    asyncio.run(main())
""")


def test_every_committed_reading_survives_sigkill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    committed = 0
    deadline = time.monotonic() + 20
    for line in proc.stdout:
        committed = int(line)
        if committed >= 5000 or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert committed >= 5000
    with contextlib.closing(sqlite3.connect(tmp_path / "appliance.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, top = conn.execute("SELECT count(*), max(value) FROM readings").fetchone()
    assert count >= committed
    assert top == count - 1  # no holes: rows are whole batches in order
    asyncio.run(write_and_close(Store(StoreSettings(), tmp_path), []))  # what the journal kept goes in
    with contextlib.closing(sqlite3.connect(tmp_path / "appliance.db")) as conn:
        after, top = conn.execute("SELECT count(*), max(value) FROM readings").fetchone()
    assert after >= count and top == after - 1


def test_a_full_disk_does_not_hold_the_stop_and_the_journal_keeps_what_it_could_not_flush(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLITE_FULL (here from max_page_count, the same error a full file system gives) makes flushes fail
    and be retried; a stop ends the retrying at once and reports the real error. The records stay in the
    journal, and the next start puts them into the database."""
    store = Store(StoreSettings(commit_interval_ms=10), tmp_path)

    async def body() -> float:
        await store.start()
        store.write(readings(100))
        await until(lambda: store.rows_committed == 100)
        pages = store.call(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0]).result(5)
        store.call(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}")).result(5)
        store.write(readings(20_000, 100))
        await until(lambda: store.commit_errors >= 1)
        began = time.monotonic()
        await asyncio.wait_for(store.stop(), 5)
        return time.monotonic() - began

    took = asyncio.run(body())
    assert took < 0.5
    assert "could not commit 20000 records at stop: database or disk is full" in caplog.text
    assert "(20000 left in the journal for the next start, 0 lost)" in caplog.text
    assert "cannot rollback" not in caplog.text
    assert store.status().dropped == 0
    db = sqlite_utils.Database(tmp_path / "appliance.db")
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 100
    db.close()
    again = Store(StoreSettings(commit_interval_ms=10), tmp_path)  # the disk has room again
    asyncio.run(write_and_close(again, []))
    assert again.rows_committed == 20_000
    with contextlib.closing(sqlite3.connect(tmp_path / "appliance.db")) as conn:
        assert conn.execute("SELECT count(*), max(value) FROM readings").fetchone() == (20_100, 20_099.0)
