"""The outbox in the store: per stream and class a cursor, and the batches waiting for acknowledgement.

A record is in the outbox from its commit until the upstream acknowledged the batch that carried it.
Batches are written to the store (payload included) before they are sent and deleted when acknowledged,
so after a crash the very same batch, with the same id and sequence number, is sent again and the
receiver can drop it as a duplicate. Functions taking a connection run on the writer's thread (the ones
that write) or on a reader connection of their own (the ones that only read).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.records import Priority

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
    "readings": "SELECT r.id, c.device, c.channel, c.unit, r.ts, r.value, r.quality FROM readings r"
    " JOIN channels c ON c.id = r.channel_id WHERE r.prio = ? AND r.id > ? ORDER BY r.id LIMIT ?",
    "events": "SELECT id, ts, kind, severity, source, message, data FROM events"
    " WHERE prio = ? AND id > ? ORDER BY id LIMIT ?",
    "evidence": "SELECT id, ts, event_id, kind, name FROM evidence"
    " WHERE prio = ? AND id > ? ORDER BY id LIMIT ?",
}


def store_id(conn: sqlite3.Connection) -> str:
    return str(conn.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()[0])


def cursor(conn: sqlite3.Connection, stream: str, prio: Priority) -> Cursor:
    found = conn.execute(
        "SELECT batched_id, next_seq, thinned FROM outbox_cursor WHERE stream = ? AND prio = ?",
        (stream, int(prio)),
    ).fetchone()
    return Cursor(*found) if found else Cursor()


def unbatched(conn: sqlite3.Connection, stream: str, prio: Priority, after_id: int, limit: int) -> list[Any]:
    """The oldest records of a class not yet in a batch, as the codec's rows."""
    return conn.execute(_UNBATCHED[stream], (int(prio), after_id, limit)).fetchall()


def add_batch(conn: sqlite3.Connection, batch: Batch, was: Cursor) -> bool:
    """Keep a batch and move the cursor past it, if nothing moved the cursor since `was` was read (else
    False: the rows must be read again). Runs inside the writer's transaction."""
    if cursor(conn, batch.stream, batch.prio) != was or batch.seq != was.next_seq:
        return False
    conn.execute(
        "INSERT INTO outbox_batches (stream, prio, seq, first_id, last_id, count, created, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            batch.stream,
            int(batch.prio),
            batch.seq,
            batch.first_id,
            batch.last_id,
            batch.count,
            batch.created,
            batch.payload,
        ),
    )
    conn.execute(
        "INSERT INTO outbox_cursor (stream, prio, batched_id, next_seq, thinned) VALUES (?, ?, ?, ?, 0)"
        " ON CONFLICT (stream, prio) DO UPDATE SET batched_id = excluded.batched_id,"
        " next_seq = excluded.next_seq, thinned = 0",
        (batch.stream, int(batch.prio), batch.last_id, batch.seq + 1),
    )
    return True


def skip(conn: sqlite3.Connection, stream: str, prio: Priority, was: Cursor, upto_id: int, gone: int) -> bool:
    """Move the cursor past records that can never be sent (evidence whose file is gone), counting them
    as thinned for the next batch's header; False if the cursor moved since `was` was read."""
    if cursor(conn, stream, prio) != was:
        return False
    conn.execute(
        "INSERT INTO outbox_cursor (stream, prio, batched_id, next_seq, thinned) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (stream, prio) DO UPDATE SET batched_id = excluded.batched_id,"
        " thinned = thinned + excluded.thinned",
        (stream, int(prio), upto_id, was.next_seq, gone),
    )
    return True


def remove_batch(conn: sqlite3.Connection, key: tuple[str, Priority, int]) -> None:
    """The upstream has it: the batch, and with it its records, leave the outbox."""
    stream, prio, seq = key
    conn.execute(
        "DELETE FROM outbox_batches WHERE stream = ? AND prio = ? AND seq = ?", (stream, int(prio), seq)
    )


def waiting(conn: sqlite3.Connection) -> list[Batch]:
    """Every batch not yet acknowledged, most important first, in sequence within a class."""
    rows = conn.execute(
        "SELECT stream, prio, seq, first_id, last_id, count, created, payload FROM outbox_batches"
        " ORDER BY prio, stream DESC, seq"
    ).fetchall()
    return [Batch(r[0], Priority(r[1]), r[2], r[3], r[4], r[5], r[6], bytes(r[7])) for r in rows]


def delivered_id(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    """Every record of the class up to this id is acknowledged."""
    oldest_waiting = conn.execute(
        "SELECT min(first_id) FROM outbox_batches WHERE stream = ? AND prio = ?", (stream, int(prio))
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
            where = f"FROM {stream} WHERE prio = ? AND id > ?"
            count += int(conn.execute(f"SELECT count(*) {where}", (int(prio), after)).fetchone()[0])
            first = conn.execute(f"SELECT ts {where} ORDER BY id LIMIT 1", (int(prio), after)).fetchone()
            if first is not None and (oldest is None or first[0] < oldest):
                oldest = float(first[0])
        result[prio] = (count, oldest)
    return result
