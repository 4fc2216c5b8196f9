"""The disk quota: when the database outgrows it, records go oldest first, lowest class first.

Order of eviction, each step until the database is back under the low-water mark:
1. records the upstream already acknowledged, background first, then normal, then important;
2. records not yet sent, thinned: every other one of the oldest, background first, then normal, then
   important. Each thinned record is counted in its class's outbox cursor and reported in the next
   batch's header, so the receiver can tell thinned from lost.
Critical records are never evicted. The newest row of a table is never deleted either, so SQLite never
hands out a row id twice (ids name records upstream), and thinning keeps a class's newest record.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from appliance.records import Priority
from appliance.store.outbox import STREAMS, delivered_id

log = logging.getLogger(__name__)

LOW_WATER = 0.9  # evict down to this fraction of the quota, so eviction does not run on every commit
CHUNK = 2000  # records deleted per step: short transactions keep the writer responsive
MAX_STEPS = 200  # per check; the next commit's check carries on
EVICTABLE = (Priority.BACKGROUND, Priority.NORMAL, Priority.IMPORTANT)


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database file in use (free pages are reused before the file grows)."""
    pages = (
        conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    )
    return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])


@dataclass
class Eviction:
    """What one check removed, by (stream, class) and how."""

    delivered: dict[tuple[str, Priority], int] = field(default_factory=dict)
    thinned: dict[tuple[str, Priority], int] = field(default_factory=dict)
    over_quota: bool = False  # still over after everything evictable went

    @property
    def total(self) -> int:
        return sum(self.delivered.values()) + sum(self.thinned.values())


def enforce(conn: sqlite3.Connection, quota_bytes: int) -> Eviction:
    """Evict until the database is under LOW_WATER x quota; call from the writer, outside a transaction."""
    done = Eviction()
    if used_bytes(conn) <= quota_bytes:
        return done
    target = int(quota_bytes * LOW_WATER)
    steps = 0
    for action in (_drop_delivered, _thin_unsent):
        for prio in EVICTABLE:
            for stream in STREAMS:
                if action is _thin_unsent and stream != "readings":
                    continue  # events and evidence are few and each one matters: only acknowledged go
                while used_bytes(conn) > target and steps < MAX_STEPS:
                    steps += 1
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        removed = action(conn, stream, prio)
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    if not removed:
                        break
                    bucket = done.delivered if action is _drop_delivered else done.thinned
                    bucket[(stream, prio)] = bucket.get((stream, prio), 0) + removed
    done.over_quota = used_bytes(conn) > quota_bytes
    return done


def _newest(conn: sqlite3.Connection, stream: str) -> int:
    return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {stream}").fetchone()[0])


def _newest_of_class(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    """Thinning keeps it, so a thinned series keeps its span however often it is thinned."""
    return int(
        conn.execute(f"SELECT coalesce(max(id), 0) FROM {stream} WHERE prio = ?", (int(prio),)).fetchone()[0]
    )


def _drop_delivered(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    upto = min(delivered_id(conn, stream, prio), _newest(conn, stream) - 1)
    cur = conn.execute(
        f"DELETE FROM {stream} WHERE id IN"
        f" (SELECT id FROM {stream} WHERE prio = ? AND id <= ? ORDER BY id LIMIT ?)",
        (int(prio), upto, CHUNK),
    )
    return cur.rowcount


def _thin_unsent(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    """Every other record of the oldest not yet in a batch: the series keeps its span at half the rate."""
    row = conn.execute(
        "SELECT batched_id FROM outbox_cursor WHERE stream = ? AND prio = ?", (stream, int(prio))
    )
    found = row.fetchone()
    after = int(found[0]) if found else 0
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM {stream} WHERE prio = ? AND id > ? AND id < ? ORDER BY id LIMIT ?",
            (int(prio), after, min(_newest(conn, stream), _newest_of_class(conn, stream, prio)), 2 * CHUNK),
        )
    ]
    victims = ids[1::2]
    if not victims:
        return 0
    conn.executemany(f"DELETE FROM {stream} WHERE id = ?", [(i,) for i in victims])
    conn.execute(
        "INSERT INTO outbox_cursor (stream, prio, thinned) VALUES (?, ?, ?)"
        " ON CONFLICT (stream, prio) DO UPDATE SET thinned = thinned + excluded.thinned",
        (stream, int(prio), len(victims)),
    )
    return len(victims)
