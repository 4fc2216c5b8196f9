"""The disk quota: when the database outgrows it, records go oldest first, lowest class first.

Order of eviction, each step until the database is back under the low-water mark:
1. records the upstream already acknowledged, background first, then normal, then important;
2. records not yet sent, thinned: every other one of the oldest, background first, then normal, then
   important. Each thinned record is counted in its class's outbox cursor and reported in the next
   batch's header, so the receiver can tell thinned from lost.
Critical records are never evicted. The newest record of a stream is never deleted either, so no id is
handed out twice (ids name records upstream), and thinning keeps a class's newest record. Readings go by
whole chunks when delivered, and are thinned within a chunk (chunks.thin); a chunk down to one reading
is thinned with its neighbours, every other one of them going.

The writer checks the quota after each write of records to the database (Watch).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.records import Priority
from appliance.store import outbox, stored
from appliance.store.chunks import COLUMNS, Chunk, place, thin
from appliance.store.outbox import STREAMS, delivered_id
from appliance.store.tables import INSERT_CHUNK

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


class Watch:
    """The writer's side of the quota: the file's size after each write of records to the database, an
    eviction when it is over, and what evictions removed."""

    def __init__(self, conn: sqlite3.Connection, quota_mb: float, account: Callable[[], None]) -> None:
        self.conn, self.quota_mb = conn, quota_mb
        self._account = account  # told after an eviction: what it wrote counts as the writer's
        self.evicted: dict[str, int] = {}  # "stream.class.delivered|thinned" -> records
        self.over_quota = False
        self.used_bytes = used_bytes(conn)

    def check(self) -> None:
        conn = self.conn
        self.used_bytes = used_bytes(conn)
        if self.used_bytes <= self.quota_mb * 1e6:
            self.over_quota = False
            return
        try:
            done = enforce(conn, int(self.quota_mb * 1e6))
        except sqlite3.Error as exc:
            log.error("store: eviction failed: %s", exc)
            return
        finally:
            self._account()
        for how, counts in (("delivered", done.delivered), ("thinned", done.thinned)):
            for (stream, prio), n in counts.items():
                key = f"{stream}.{prio.label}.{how}"
                self.evicted[key] = self.evicted.get(key, 0) + n
        if done.total:
            log.warning("store over its quota: evicted %d records (%s)", done.total, self.evicted)
        if done.over_quota and not self.over_quota:
            log.error("store still over its %.0f MB quota: only critical records are left", self.quota_mb)
        self.over_quota = done.over_quota
        self.used_bytes = used_bytes(conn)


def _table(stream: str) -> str:
    """Where a stream's rows are (readings: the old rows; their chunks are apart)."""
    return "reading_rows" if stream == "readings" else stream


def _newest(conn: sqlite3.Connection, stream: str) -> int:
    if stream == "readings":
        return stored.newest(conn)
    return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {stream}").fetchone()[0])


def _newest_of_class(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    """Thinning keeps it, so a thinned series keeps its span however often it is thinned."""
    if stream == "readings":
        return stored.newest(conn, int(prio))
    return int(
        conn.execute(f"SELECT coalesce(max(id), 0) FROM {stream} WHERE prio = ?", (int(prio),)).fetchone()[0]
    )


def _drop_delivered(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    upto = min(delivered_id(conn, stream, prio), _newest(conn, stream) - 1)
    table = _table(stream)
    cur = conn.execute(
        f"DELETE FROM {table} WHERE id IN"
        f" (SELECT id FROM {table} WHERE prio = ? AND id <= ? ORDER BY id LIMIT ?)",
        (int(prio), upto, CHUNK),
    )
    removed = cur.rowcount
    if stream == "readings":  # the class's oldest chunks, whole ones delivered
        places, count = [], 0
        query = "SELECT place, n, last_id FROM reading_chunks WHERE place BETWEEN ? AND ? ORDER BY place"
        for at, n, last_id in conn.execute(query, (place(int(prio)), place(int(prio), upto))):
            if count >= CHUNK or last_id > upto:
                break
            places.append((at,))
            count += n
        conn.executemany("DELETE FROM reading_chunks WHERE place = ?", places)
        removed += count
    return removed


def _thin_unsent(conn: sqlite3.Connection, stream: str, prio: Priority) -> int:
    """Every other record of the oldest not yet in a batch: the series keeps its span at half the rate."""
    after = outbox.cursor(conn, stream, prio).batched_id
    table = _table(stream)
    keep = min(_newest(conn, stream), _newest_of_class(conn, stream, prio))
    ids = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM {table} WHERE prio = ? AND id > ? AND id < ? ORDER BY id LIMIT ?",
            (int(prio), after, keep, 2 * CHUNK),
        )
    ]
    victims = ids[1::2]
    conn.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i in victims])
    thinned = len(victims) + (_thin_chunks(conn, int(prio), after, keep) if stream == "readings" else 0)
    if thinned:
        outbox.thinned(conn, stream, prio, thinned)
    return thinned


def _thin_chunks(conn: sqlite3.Connection, prio: int, after: int, keep: int) -> int:
    """Halve the class's oldest chunks wholly past `after` and before the one holding `keep`; of those down
    to one reading, every other one goes. The run is deleted and written again, halved: in place, the
    halved rows would leave every page half empty and free none. Returns the readings removed."""
    removed, singles, halved = 0, [], []
    query = f"SELECT {COLUMNS} FROM reading_chunks WHERE place > ? AND place < ? ORDER BY place"
    for row in conn.execute(query, (place(prio, after), place(prio, keep))):
        chunk = Chunk.of(row)
        if chunk.last_id >= keep:
            break
        if chunk.n == 1:
            singles.append(chunk.row())
        else:
            halved.append(thin(chunk).row())
            removed += chunk.n - halved[-1][5]
        if removed + len(singles) // 2 >= CHUNK:
            break
    gone = singles[1::2]
    conn.executemany("DELETE FROM reading_chunks WHERE place = ?", [(r[0],) for r in halved + gone])
    conn.executemany(INSERT_CHUNK, halved)
    return removed + len(gone)
