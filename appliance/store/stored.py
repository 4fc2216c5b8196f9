"""Readings of a class by id, as the outbox and the quota ask for them: from the chunks (unpacked here,
not through the slow view) and from the rows an older release kept, which come first."""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator

from appliance.store.chunks import COLUMNS, Chunk, decode, place

ReadingRow = tuple[int, str, str, str, float, float | str | None, int]  # id, device, channel, unit, ts,
# value, quality: what the sync codec takes

_ROWS = (
    "SELECT r.id, c.device, c.channel, c.unit, r.ts, r.value, r.quality FROM reading_rows r"
    " JOIN channels c ON c.id = r.channel_id WHERE r.prio = ? AND r.id > ? ORDER BY r.id LIMIT ?"
)


def chunks_after(conn: sqlite3.Connection, prio: int, after: int) -> Iterator[Chunk]:
    """The class's chunks holding a reading past `after`, oldest first (read as they are needed): the one
    it may fall in, then those after it."""
    straddling = conn.execute(
        f"SELECT {COLUMNS} FROM reading_chunks WHERE place BETWEEN ? AND ? ORDER BY place DESC LIMIT 1",
        (place(prio), place(prio, after)),
    ).fetchone()
    if straddling is not None and straddling[1] > after:
        yield Chunk.of(straddling)
    query = f"SELECT {COLUMNS} FROM reading_chunks WHERE place > ? AND place < ? ORDER BY place"
    for row in conn.execute(query, (place(prio, after), place(prio + 1))):
        yield Chunk.of(row)


def first_past(chunk: Chunk, after: int) -> int:
    """The position in the chunk of its first reading with an id past `after`."""
    return max(0, min(chunk.n, (after - chunk.first_id) // chunk.stride + 1))


def after(conn: sqlite3.Connection, prio: int, after_id: int, limit: int) -> list[ReadingRow]:
    """The class's oldest readings with ids past `after_id`, at most `limit`, in id order."""
    channels = {i: (d, c, u) for i, d, c, u in conn.execute("SELECT id, device, channel, unit FROM channels")}
    packed: list[ReadingRow] = []
    for chunk in chunks_after(conn, prio, after_id):
        ids, micros, values, quality = decode(chunk)
        device, channel, unit = channels[chunk.channel_id]
        for i in range(first_past(chunk, after_id), chunk.n):
            packed.append((ids[i], device, channel, unit, micros[i] / 1e6, values[i], quality[i]))
        if len(packed) >= limit:
            break
    rows: list[ReadingRow] = conn.execute(_ROWS, (prio, after_id, limit)).fetchall()
    return list(heapq.merge(rows, packed))[:limit]


def count_after(conn: sqlite3.Connection, prio: int, after_id: int, limit: int | None = None) -> int:
    """How many of the class's readings have ids past `after_id` (counting stops past `limit`)."""
    count = int(
        conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM reading_rows WHERE prio = ? AND id > ? LIMIT ?)",
            (prio, after_id, -1 if limit is None else limit),
        ).fetchone()[0]
    )
    found = conn.execute(
        "SELECT first_id, n, stride, last_id FROM reading_chunks WHERE place BETWEEN ? AND ?"
        " ORDER BY place DESC LIMIT 1",
        (place(prio), place(prio, after_id)),
    ).fetchone()
    if found is not None and found[3] > after_id:  # the chunk `after_id` falls in: its later readings
        count += found[1] - ((after_id - found[0]) // found[2] + 1)
    span = (place(prio, after_id), place(prio + 1))
    if limit is None:
        later = conn.execute(
            "SELECT coalesce(sum(n), 0) FROM reading_chunks WHERE place > ? AND place < ?", span
        ).fetchone()[0]
        return count + int(later)
    for (n,) in conn.execute(
        "SELECT n FROM reading_chunks WHERE place > ? AND place < ? ORDER BY place", span
    ):
        if count >= limit:
            break
        count += n
    return count


def oldest_after(conn: sqlite3.Connection, prio: int, after_id: int) -> float | None:
    """The timestamp of the class's first reading past `after_id`."""
    found = conn.execute(
        "SELECT ts FROM reading_rows WHERE prio = ? AND id > ? ORDER BY id LIMIT 1", (prio, after_id)
    ).fetchone()
    if found is not None:  # rows from before the chunks have the smaller ids
        return float(found[0])
    for chunk in chunks_after(conn, prio, after_id):
        _, micros, _, _ = decode(chunk)
        return micros[first_past(chunk, after_id)] / 1e6
    return None


def newest(conn: sqlite3.Connection, prio: int | None = None) -> int:
    """The newest reading's id (of a class)."""
    rows = conn.execute(
        "SELECT coalesce(max(id), 0) FROM reading_rows" + (" WHERE prio = ?" if prio is not None else ""),
        () if prio is None else (prio,),
    ).fetchone()[0]
    found = [int(rows)]
    for klass in range(4) if prio is None else (prio,):
        last = conn.execute(
            "SELECT last_id FROM reading_chunks WHERE place >= ? AND place < ? ORDER BY place DESC LIMIT 1",
            (place(klass), place(klass + 1)),
        ).fetchone()
        found.append(int(last[0]) if last else 0)
    return max(found)
