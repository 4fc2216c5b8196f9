"""The outbox in the store: per stream and class a cursor, and the batches waiting for acknowledgement.

A record is in the outbox from its commit until the upstream acknowledged the batch that carried it.
Batches are committed to the store before they are sent and deleted when acknowledged, so after a crash
the very same batch, with the same id and sequence number, is sent again and the receiver can drop it as
a duplicate. Functions taking a connection run on the writer's thread (the ones that write) or on a
reader connection of their own (the ones that only read).

A batch's payload is kept in a file of its own in the store's folder aside (aside.py: RAM by default),
not in the database: written to the database it would be written twice more (WAL frame, checkpoint) for
the seconds until its acknowledgement, and an evidence batch is mostly files that are on the disk
already. A killed process leaves the file for the next start; a flush moves the payloads that have
waited a flush interval (the upstream is away) into the database, and a clean stop all of them, so that
a reboot keeps them. A power cut can lose a younger one: at the next start the batch is dropped and its
records reported as thinned in the class's next batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sqlite3
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.records import Priority
from appliance.store import aside, stored

STREAMS = ("readings", "events", "evidence")


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a stream's class is in batches, the next batch's sequence number, thinned since the last."""

    batched_id: int = 0
    next_seq: int = 1
    thinned: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    """An encoded batch that the upstream has not acknowledged yet."""

    stream: str
    prio: Priority
    seq: int
    first_id: int
    last_id: int
    count: int
    created: float
    payload: bytes

    @property
    def key(self) -> tuple[str, Priority, int]:
        return self.stream, self.prio, self.seq


# A class's oldest records after an id; evidence rows name their file, which the packer reads.
_UNBATCHED = {
    "events": "SELECT id, ts, kind, severity, source, message, data FROM events"
    " WHERE prio = ? AND id > ? ORDER BY id LIMIT ?",
    "evidence": "SELECT id, ts, event_id, kind, name FROM evidence"
    " WHERE prio = ? AND id > ? ORDER BY id LIMIT ?",
}


def store_id(conn: sqlite3.Connection) -> str:
    return str(conn.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()[0])


def cursor(conn: sqlite3.Connection, stream: str, prio: Priority) -> Cursor:
    found = conn.execute(
        "SELECT first_id, last_id, count FROM outbox WHERE stream = ? AND prio = ? AND seq = 0",
        (stream, int(prio)),
    ).fetchone()
    return Cursor(*found) if found else Cursor()


def _move(conn: sqlite3.Connection, stream: str, prio: Priority, to: Cursor) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO outbox (stream, prio, seq, first_id, last_id, count, created, payload)"
        " VALUES (?, ?, 0, ?, ?, ?, 0, x'')",
        (stream, int(prio), to.batched_id, to.next_seq, to.thinned),
    )


def thinned(conn: sqlite3.Connection, stream: str, prio: Priority, records: int) -> None:
    """Records of the class evicted before they were sent: the next batch reports them."""
    was = cursor(conn, stream, prio)
    _move(conn, stream, prio, dataclasses.replace(was, thinned=was.thinned + records))


def unbatched(conn: sqlite3.Connection, stream: str, prio: Priority, after_id: int, limit: int) -> list[Any]:
    """The oldest records of a class not yet in a batch, as the codec's rows."""
    if stream == "readings":
        return stored.after(conn, int(prio), after_id, limit)
    return conn.execute(_UNBATCHED[stream], (int(prio), after_id, limit)).fetchall()


def waiting_records(conn: sqlite3.Connection, stream: str, prio: Priority, after_id: int, limit: int) -> int:
    """How many records of a class have ids past `after_id`, counted up to `limit`."""
    if stream == "readings":
        return stored.count_after(conn, int(prio), after_id, limit)
    return int(
        conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {stream} WHERE prio = ? AND id > ? LIMIT ?)",
            (int(prio), after_id, limit),
        ).fetchone()[0]
    )


def add_batch(conn: sqlite3.Connection, batch: Batch, was: Cursor) -> bool:
    """Keep a batch and move the cursor past it, if nothing moved the cursor since `was` was read (else
    False: the rows must be read again). Runs inside the writer's transaction."""
    if cursor(conn, batch.stream, batch.prio) != was or batch.seq != was.next_seq:
        return False
    _write_aside(conn, batch)
    conn.execute(
        "INSERT INTO outbox (stream, prio, seq, first_id, last_id, count, created, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, x'')",
        (batch.stream, int(batch.prio), batch.seq, batch.first_id, batch.last_id, batch.count, batch.created),
    )
    _move(conn, batch.stream, batch.prio, Cursor(batch.last_id, batch.seq + 1, 0))
    return True


def skip(conn: sqlite3.Connection, stream: str, prio: Priority, was: Cursor, upto_id: int, gone: int) -> bool:
    """Move the cursor past records that can never be sent (evidence whose file is gone), counting them
    as thinned for the next batch's header; False if the cursor moved since `was` was read."""
    if cursor(conn, stream, prio) != was:
        return False
    _move(conn, stream, prio, Cursor(upto_id, was.next_seq, was.thinned + gone))
    return True


def remove_batch(conn: sqlite3.Connection, key: tuple[str, Priority, int]) -> Path:
    """The upstream has it: the batch, and with it its records, leave the outbox. Returns its payload's
    file aside, for the caller to remove once this has committed (forget_payload): removed before, a
    process killed in between would find the batch at its next start and not its payload."""
    stream, prio, seq = key
    conn.execute("DELETE FROM outbox WHERE stream = ? AND prio = ? AND seq = ?", (stream, int(prio), seq))
    return _aside(conn, stream, prio, seq)


def forget_payload(removed: Future[Path]) -> None:
    """Done callback of a committed remove_batch: its payload's file goes."""
    if not removed.cancelled() and removed.exception() is None:
        removed.result().unlink(missing_ok=True)


def waiting(conn: sqlite3.Connection) -> list[Batch]:
    """Every batch not yet acknowledged, most important first, in sequence within a class."""
    rows = conn.execute(
        "SELECT stream, prio, seq, first_id, last_id, count, created, payload FROM outbox WHERE seq > 0"
        " ORDER BY prio, stream DESC, seq"
    ).fetchall()
    found = []
    for r in rows:
        batch = Batch(r[0], Priority(r[1]), r[2], r[3], r[4], r[5], r[6], bytes(r[7]))
        if not batch.payload:
            try:
                batch = dataclasses.replace(batch, payload=_aside(conn, *batch.key).read_bytes())
            except FileNotFoundError:
                continue  # lost in a power cut: drop_lost() reports it at the next start
        found.append(batch)
    return found


def keep_in_database(conn: sqlite3.Connection, made_before: float = math.inf) -> list[Path]:
    """In the writer's transaction: the payloads still waiting aside of batches made before that time
    (all of them at a clean stop) into their rows, which outlive a reboot. Returns the files copied, to
    be removed once the transaction has committed (remove_aside)."""
    kept = []
    for stream, prio, seq in conn.execute(
        "SELECT stream, prio, seq FROM outbox WHERE seq > 0 AND length(payload) = 0 AND created < ?",
        (made_before,),
    ).fetchall():
        path = _aside(conn, stream, Priority(prio), seq)
        with contextlib.suppress(FileNotFoundError):
            conn.execute(
                "UPDATE outbox SET payload = ? WHERE stream = ? AND prio = ? AND seq = ?",
                (path.read_bytes(), stream, prio, seq),
            )
            kept.append(path)
    return kept


def drop_lost(conn: sqlite3.Connection) -> int:
    """Batches whose payload a power cut lost: out of the outbox, their records counted as thinned in
    their class's next batch. Runs in the writer's transaction; returns how many records."""
    lost = 0
    for stream, prio, seq, count in conn.execute(
        "SELECT stream, prio, seq, count FROM outbox WHERE seq > 0 AND length(payload) = 0"
    ).fetchall():
        if _aside(conn, stream, Priority(prio), seq).exists():
            continue
        conn.execute("DELETE FROM outbox WHERE stream = ? AND prio = ? AND seq = ?", (stream, prio, seq))
        thinned(conn, stream, Priority(prio), count)
        lost += count
    return lost


def remove_aside(paths: list[Path]) -> None:
    """After keep_in_database() committed: the files it copied go."""
    for path in paths:
        path.unlink(missing_ok=True)


def _aside(conn: sqlite3.Connection, stream: str, prio: Priority, seq: int) -> Path:
    """Where a batch's payload is kept: the store's folder aside, as the database notes it."""
    return aside.of(conn) / f"batch-{stream}-{int(prio)}-{seq}"


def _write_aside(conn: sqlite3.Connection, batch: Batch) -> None:
    """Written whole under a temporary name and renamed, before the row that names it commits; a crash
    between the two leaves a stray file that the next batch of that number replaces."""
    path = _aside(conn, *batch.key)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(batch.payload)
    os.replace(partial, path)


def delivered_id(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    """Every record of the class up to this id is acknowledged."""
    oldest_waiting = conn.execute(
        "SELECT min(first_id) FROM outbox WHERE stream = ? AND prio = ? AND seq > 0", (stream, int(prio))
    ).fetchone()[0]
    if oldest_waiting is not None:
        return int(oldest_waiting) - 1
    return cursor(conn, stream, prio).batched_id


def backlog(conn: sqlite3.Connection) -> dict[Priority, tuple[int, float | None]]:
    """Per class: records not yet acknowledged, and the timestamp of the oldest of them."""
    result = {}
    for prio in Priority:
        count, oldest = 0, None
        for stream in STREAMS:
            after = delivered_id(conn, stream, prio)
            if stream == "readings":
                count += stored.count_after(conn, int(prio), after)
                first = stored.oldest_after(conn, int(prio), after)
            else:
                where = f"FROM {stream} WHERE prio = ? AND id > ?"
                count += int(conn.execute(f"SELECT count(*) {where}", (int(prio), after)).fetchone()[0])
                found = conn.execute(f"SELECT ts {where} ORDER BY id LIMIT 1", (int(prio), after)).fetchone()
                first = None if found is None else float(found[0])
            if first is not None and (oldest is None or first < oldest):
                oldest = first
        result[prio] = (count, oldest)
    return result
