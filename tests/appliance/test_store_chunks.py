"""Readings packed in chunks, the readings view over them, the journal's frames, an upgrade from the schema
before, and the outbox's payloads kept aside: on real SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import random
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from appliance.config.models import StoreSettings
from appliance.records import Priority, Quality, Reading
from appliance.store import Store, aside, chunks, outbox
from appliance.store.migrations import MIGRATIONS, SCHEMA_VERSION
from appliance.store.outbox import Batch
from appliance.store.spool import Spool
from appliance.store.tables import INSERT_CHUNK, connect

Value = float | str | None


def runs(rng: random.Random) -> list[list[Value]]:
    """A channel's values of every kind the encoder knows, and the awkward ones."""
    floats32 = [struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0] for _ in range(300)]
    floats64 = [struct.unpack(">d", struct.pack(">Q", rng.getrandbits(64)))[0] for _ in range(300)]
    return [
        [v if v == v else None for v in floats32],  # a NaN comes back as no value
        [v if v == v else None for v in floats64],
        [rng.randrange(-30000, 30000) * 0.1 for _ in range(300)],
        [rng.randrange(-30000, 30000) / 100 for _ in range(300)],
        [float(rng.randrange(1_200_000, 1_200_300)) for _ in range(300)],
        [round(rng.uniform(-3, 3), 5) for _ in range(300)],
        [1.0] * 50,
        [None, "PX-2207", "é ü", None] * 5,
        ["PX-2207-0419"] * 7,
        [1.5, None, -0.0, 0.0, math.inf, -math.inf, 5e-324, 1e-310, 3.4e38, 1e300],
        [1.0, 2.0, "x", 3.0, None],
    ]


def same(a: Value, b: Value) -> bool:
    return (
        a == b
        if not isinstance(a, float) or not isinstance(b, float)
        else struct.pack(">d", a) == struct.pack(">d", b)
    )


def test_chunks_keep_every_value_to_the_bit_and_the_view_reads_them_in_plain_sql(tmp_path: Path) -> None:
    rng = random.Random(4)
    path = tmp_path / "appliance.db"
    db = connect(path)
    db.execute("INSERT INTO channels (id, device, channel, unit) VALUES (1, 'd', 'c', 'u')")
    expected: dict[int, tuple[float, Value, int]] = {}
    first = 1
    for values in runs(rng):
        n = len(values)
        # polled every 0.5 s with some jitter, then a gap, then a clock step of a day
        micros = [1_795_000_000_000_000 + i * 500_000 + rng.randrange(-3000, 3000) for i in range(n)]
        micros[n // 2 :] = [m + 86_400_000_000 for m in micros[n // 2 :]]
        quality = [rng.choice([0, 0, 0, 1, 2]) for _ in range(n)]
        for chunk in chunks.encode(first, 2, 1, micros, values, quality):
            db.execute(INSERT_CHUNK, chunk.row())
            ids, stamps, got, codes = chunks.decode(chunk)
            for k, i in enumerate(ids):
                assert stamps[k] == micros[i - first] and codes[k] == quality[i - first]
                assert same(got[k], values[i - first]), (got[k], values[i - first], chunk.kind)
                expected[i] = (stamps[k] / 1e6, got[k], codes[k])
            halved = chunks.decode(chunks.thin(chunk))  # every other reading, the first one kept
            assert halved[0] == ids[::2] and halved[1] == stamps[::2] and halved[3] == codes[::2]
            assert all(same(a, b) for a, b in zip(halved[2], got[::2], strict=True))
        first += n
    db.conn.close()
    # the view, on a plain connection as any tool has it
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT id, ts, value, quality, prio, channel_id FROM readings").fetchall()
    assert len(rows) == len(expected)
    for rid, ts, value, quality, prio, channel in rows:
        want = expected[rid]
        if isinstance(want[1], float) and want[1] == 0:
            want = (want[0], 0.0, want[2])  # SQLite has no -0.0
        assert (ts, quality, prio, channel) == (want[0], want[2], 2, 1) and same(value, want[1]), (rid, value)


def test_a_torn_journal_keeps_the_frames_before_the_tear(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    list(spool.recover(0))
    spool.start()
    for i in range(3):
        spool.append(([("d", "c", "", float(i), 1.0, 0, 2)], [], []))
    spool.close()
    path = spool.paths[1]
    path.write_bytes(path.read_bytes()[:-5])  # a power cut in the middle of the last write
    again = Spool(tmp_path)
    frames = list(again.recover(0))
    assert [f[0][0][3] for _, f in frames] == [0.0, 1.0] and again.generation == 1
    assert list(Spool(tmp_path).recover(1)) == []  # generation 1 is in the database already


def schema_4(path: Path) -> None:
    """A database as the release before made it: readings a row each, an outbox with a waiting batch."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("PRAGMA journal_mode=WAL")
        for version, script in enumerate(MIGRATIONS[:4], start=1):
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {version}; COMMIT;")
        conn.execute("INSERT INTO channels (device, channel, unit) VALUES ('dev', 'temp', 'degC')")
        conn.executemany(
            "INSERT INTO readings (channel_id, ts, value, quality, prio) VALUES (1, ?, ?, 0, ?)",
            [(1_700_000_000.0 + i, i * 0.5, 2 if i % 3 else 3) for i in range(300)],
        )
        conn.execute(
            "INSERT INTO events (ts, kind, severity, source, message, prio)"
            " VALUES (1.0, 'x', 'info', 's', 'm', 2)"
        )
        conn.execute("INSERT INTO outbox_cursor VALUES ('readings', 2, 150, 4, 7)")
        conn.execute("INSERT INTO outbox_batches VALUES ('readings', 2, 3, 100, 150, 34, 9.5, x'0102')")


def test_a_database_of_the_schema_before_is_upgraded_in_place_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "appliance.db"
    schema_4(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        before = conn.execute("SELECT id, ts, value, quality, prio FROM readings ORDER BY id").fetchall()
    store = Store(StoreSettings(commit_interval_ms=5), tmp_path)

    async def run() -> list[Any]:
        await store.start()
        store.write([Reading("dev", "temp", 99.5, "degC", 1_800_000_000.0, Quality.OK)])
        await asyncio.to_thread(store.call(lambda conn: None).result, 5)
        with contextlib.closing(store.reader()) as conn:
            found = [
                outbox.cursor(conn, "readings", Priority.NORMAL),
                outbox.waiting(conn),
                outbox.unbatched(conn, "readings", Priority.NORMAL, 290, 100),
                outbox.backlog(conn)[Priority.NORMAL],
            ]
        await store.stop()
        return found

    cursor, waiting, unbatched, backlog = asyncio.run(run())
    normal = [r[0] for r in before if r[4] == 2]
    assert store.schema == SCHEMA_VERSION
    assert cursor == outbox.Cursor(150, 4, 7)
    assert waiting == [Batch("readings", Priority.NORMAL, 3, 100, 150, 34, 9.5, b"\x01\x02")]
    assert [r[0] for r in unbatched] == [i for i in normal if i > 290] + [301]  # the old rows, then the new
    assert unbatched[-1][1:] == ("dev", "temp", "degC", 1_800_000_000.0, 99.5, 0)
    # readings from the waiting batch's first record on, and the event (the oldest)
    assert backlog == (len([i for i in normal if i >= 100]) + 1 + 1, 1.0)
    db = sqlite_utils.Database(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    after = db.execute("SELECT id, ts, value, quality, prio FROM readings ORDER BY id").fetchall()
    assert after[:-1] == before and after[-1] == (301, 1_800_000_000.0, 99.5, 0, 2)
    assert db.execute("PRAGMA page_size").fetchone()[0] == 4096  # kept: changing it rewrites the file
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_batch_payloads_wait_aside_and_in_the_database_over_a_clean_stop(tmp_path: Path) -> None:
    store = Store(StoreSettings(commit_interval_ms=5), tmp_path)
    batch = Batch("events", Priority.IMPORTANT, 1, 1, 2, 2, 5.0, b"the payload")
    lost = Batch("evidence", Priority.BACKGROUND, 1, 3, 3, 1, 6.0, b"a frame")

    async def first() -> tuple[Any, ...]:
        await store.start()
        for b in (batch, lost):
            kept = store.call(functools.partial(outbox.add_batch, batch=b, was=outbox.Cursor()), flush=False)
            assert await asyncio.to_thread(kept.result, 5)
        with contextlib.closing(store.reader()) as conn:
            payloads = conn.execute("SELECT seq, payload FROM outbox WHERE seq > 0").fetchall()
            waiting = outbox.waiting(conn)
        folder = aside.folder(store.settings.journal_folder, store.path)
        names = {p.name for p in folder.iterdir()}
        (folder / "batch-evidence-3-1").unlink()  # as a power cut would have lost it
        await store.stop()
        return payloads, waiting, names

    payloads, waiting, names = asyncio.run(first())
    assert payloads == [(1, b""), (1, b"")]  # not in the database while the store runs
    assert waiting == [batch, lost] and {"batch-events-1-1", "spool1"} <= names
    again = Store(StoreSettings(commit_interval_ms=5), tmp_path)

    async def second() -> tuple[Any, ...]:
        await again.start()
        with contextlib.closing(again.reader()) as conn:
            found = outbox.waiting(conn), outbox.cursor(conn, "evidence", Priority.BACKGROUND)
        await again.stop()
        return found

    waiting, cursor = asyncio.run(second())
    assert waiting == [batch]  # its payload went into the database at the clean stop
    assert cursor == outbox.Cursor(3, 2, 1)  # the lost one's record is reported thinned


def test_an_acknowledged_batch_keeps_its_payload_until_its_removal_commits(tmp_path: Path) -> None:
    """A process killed after an acknowledgement's removal ran and before it committed: the batch is still
    in the outbox at the next start, so its payload must be too (else its records count as thinned)."""
    store = Store(StoreSettings(commit_interval_ms=5), tmp_path)
    batch = Batch("readings", Priority.CRITICAL, 1, 1, 2, 2, time.time(), b"two critical readings")

    async def run() -> bool:
        await store.start()
        kept = store.call(functools.partial(outbox.add_batch, batch=batch, was=outbox.Cursor()), flush=False)
        assert await asyncio.to_thread(kept.result, 5)

        def removed_then_killed(conn: sqlite3.Connection) -> None:
            outbox.remove_batch(conn, batch.key)
            raise RuntimeError("killed before the commit")  # the op's savepoint is rolled back

        undone = store.call(removed_then_killed, flush=False)
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(undone.result, 5)
        with contextlib.closing(store.reader()) as conn:
            still = outbox.waiting(conn) == [batch]
        await store.stop()
        return still

    assert asyncio.run(run()), "the batch's payload went before its removal committed"


def test_a_batch_left_waiting_past_a_flush_interval_goes_into_the_database(tmp_path: Path) -> None:
    """An upstream away for long (an outage): its batches' payloads must not wait in RAM, where a power
    cut would lose them and with them records the store still holds. A flush takes those older than
    the flush interval into the database; the fresh ones (acknowledged within seconds) stay aside."""
    store = Store(StoreSettings(commit_interval_ms=5, flush_interval_s=1.0), tmp_path)
    old = Batch("readings", Priority.NORMAL, 1, 1, 2, 2, time.time() - 30, b"sent half a minute ago")
    new = Batch("events", Priority.NORMAL, 1, 1, 1, 1, time.time() + 3600, b"just sent")

    async def run() -> tuple[Any, ...]:
        await store.start()
        for b in (old, new):
            kept = store.call(functools.partial(outbox.add_batch, batch=b, was=outbox.Cursor()), flush=False)
            assert await asyncio.to_thread(kept.result, 5)
        store.write([Reading("dev", "t", 1.0, "u", time.time(), Quality.OK)])
        flushed = store.call(lambda conn: None)  # after a flush
        await asyncio.to_thread(flushed.result, 5)
        with contextlib.closing(store.reader()) as conn:
            payloads = conn.execute(
                "SELECT stream, payload FROM outbox WHERE seq > 0 ORDER BY stream"
            ).fetchall()
        folder = aside.folder(store.settings.journal_folder, store.path)
        names = {p.name for p in folder.iterdir() if p.name.startswith("batch-")}
        await store.stop()
        return payloads, names

    payloads, names = asyncio.run(run())
    assert payloads == [("events", b""), ("readings", old.payload)]
    assert names == {"batch-events-2-1"}


def test_no_other_process_opens_the_database_while_the_store_runs(tmp_path: Path) -> None:
    """The WAL index is kept in this process's memory (no -shm file for the kernel to write back)."""
    store = Store(StoreSettings(commit_interval_ms=5), tmp_path)
    db = str(tmp_path / "appliance.db")
    probe = f"import sqlite3; sqlite3.connect({db!r}).execute('SELECT 1 FROM readings')"

    async def run() -> subprocess.CompletedProcess[str]:
        await store.start()
        try:
            return await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30
            )
        finally:
            await store.stop()

    found = asyncio.run(run())
    assert "database is locked" in found.stderr
    assert not (tmp_path / "appliance.db-shm").exists()
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30).returncode == 0


@pytest.mark.parametrize("setting", ["", "ram", "missing"])
def test_the_journal_is_kept_where_the_setting_says_if_it_can(tmp_path: Path, setting: str) -> None:
    (tmp_path / "ram").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    folder = aside.folder(str(tmp_path / setting) if setting else "", data / "appliance.db")
    mine = tmp_path / "ram" / f"edge-appliance-{os.getuid()}"
    assert folder.parent == (mine if setting == "ram" else data)
    assert folder.stat().st_mode & 0o777 == 0o700
