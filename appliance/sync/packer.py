"""Packs a class's oldest unsent records into a batch, encodes it, and keeps it in the store's outbox."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from appliance.records import Priority
from appliance.store import Store, outbox
from appliance.store.outbox import Batch
from appliance.sync.codec import BatchHeader, encode_events, encode_readings

STORE_TIMEOUT_S = 30.0


class BatchPacker:
    """Reads on a connection of its own; the batch and the cursor move are written by the store's writer."""

    def __init__(self, store: Store, device: str) -> None:
        self.store = store
        self.device = device
        self.conn: sqlite3.Connection = store.reader()
        self.store_id = outbox.store_id(self.conn)

    def close(self) -> None:
        self.conn.close()

    def has_full_batch(self, stream: str, prio: Priority, records: int) -> bool:
        """At least `records` of this class wait to be packed."""
        after = outbox.cursor(self.conn, stream, prio).batched_id
        found = self.conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {stream} WHERE prio = ? AND id > ? LIMIT ?)",
            (int(prio), after, records),
        ).fetchone()[0]
        return int(found) >= records

    def pack(self, stream: str, prio: Priority, records: int, max_bytes: int, level: int) -> Batch | None:
        """The next batch of this class, kept in the outbox; None when nothing waits (or the records moved
        under us, e.g. thinned by the quota: the caller simply asks again)."""
        was = outbox.cursor(self.conn, stream, prio)
        rows = outbox.unbatched(self.conn, stream, prio, was.batched_id, records)
        if not rows:
            return None
        while True:
            payload = self._encode(stream, prio, rows, was, level)
            if len(payload) <= max_bytes or len(rows) == 1:
                break
            rows = rows[: len(rows) // 2]  # too big for this tier's batches: half as many records
        batch = Batch(stream, prio, was.next_seq, rows[0][0], rows[-1][0], len(rows), time.time(), payload)
        future = self.store.call(lambda conn: outbox.add_batch(conn, batch, was))
        return batch if future.result(timeout=STORE_TIMEOUT_S) else None

    def _encode(self, stream: str, prio: Priority, rows: list[Any], was: outbox.Cursor, level: int) -> bytes:
        header = BatchHeader(
            device=self.device,
            store=self.store_id,
            stream=stream,
            priority=prio.label,
            seq=was.next_seq,
            first_id=rows[0][0],
            last_id=rows[-1][0],
            count=len(rows),
            thinned=was.thinned,
            created=time.time(),
        )
        if stream == "readings":
            return encode_readings(header, rows, level)
        return encode_events(header, rows, level)

    def waiting(self) -> list[Batch]:
        return outbox.waiting(self.conn)

    def backlog(self) -> dict[Priority, tuple[int, float | None]]:
        return outbox.backlog(self.conn)

    def acknowledged(self, batch: Batch) -> None:
        """The upstream has it: drop it from the outbox (queued to the writer; nothing waits for it)."""
        self.store.call(lambda conn: outbox.remove_batch(conn, batch.key))
