"""Packs a class's oldest unsent records into a batch, encodes it, and keeps it in the store's outbox."""

from __future__ import annotations

import functools
import sqlite3
import time
from pathlib import Path
from typing import Any

from appliance.qc.evidence_files import read_own_file
from appliance.records import Priority
from appliance.store import Store, outbox
from appliance.store.outbox import Batch
from appliance.sync.codec import BatchHeader, EvidenceRow, encode_events, encode_evidence, encode_readings

STORE_TIMEOUT_S = 30.0
# An evidence file is written a moment after its event is committed (by the QC pipeline's evidence thread):
# one missing for longer was dropped or already deleted by the evidence budget, and counts as thinned.
# Counted on the monotonic clock from when the packer first missed it, not from the event's wall-clock time,
# which a clock step would make look hours old (thinning files on their way) or hours ahead (a long wait).
EVIDENCE_WAIT_S = 30.0
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


class BatchPacker:
    """Reads on a connection of its own; the batch and the cursor move are written by the store's writer."""

    def __init__(self, store: Store, device: str, evidence: Path) -> None:
        self.store = store
        self.device = device
        self.evidence = evidence  # the folder the evidence rows' files are in
        self.conn: sqlite3.Connection = store.reader()
        self.store_id = outbox.store_id(self.conn)
        self.clock = time.monotonic
        self._missing: dict[int, float] = {}  # evidence row id -> when its file was first missed

    def close(self) -> None:
        self.conn.close()

    def has_full_batch(self, stream: str, prio: Priority, records: int) -> bool:
        """At least `records` of this class wait to be packed."""
        after = outbox.cursor(self.conn, stream, prio).batched_id
        return outbox.waiting_records(self.conn, stream, prio, after, records) >= records

    def pack(self, stream: str, prio: Priority, records: int, max_bytes: int, level: int) -> Batch | None:
        """The next batch of this class, kept in the outbox; None when nothing waits (or the records moved
        under us, e.g. thinned by the quota: the caller simply asks again)."""
        if stream == "evidence":
            return self._pack_evidence(prio, records, max_bytes)
        was = outbox.cursor(self.conn, stream, prio)
        rows = outbox.unbatched(self.conn, stream, prio, was.batched_id, records)
        if not rows:
            return None
        while True:
            payload = self._encode(stream, prio, rows, was, level)
            if len(payload) <= max_bytes or len(rows) == 1:
                break
            rows = rows[: len(rows) // 2]  # too big for this tier's batches: half as many records
        return self._keep(
            Batch(stream, prio, was.next_seq, rows[0][0], rows[-1][0], len(rows), time.time(), payload), was
        )

    def _keep(self, batch: Batch, was: outbox.Cursor) -> Batch | None:
        future = self.store.call(lambda conn: outbox.add_batch(conn, batch, was), flush=False)
        return batch if future.result(timeout=STORE_TIMEOUT_S) else None

    def _pack_evidence(self, prio: Priority, records: int, max_bytes: int) -> Batch | None:
        """Files in id order up to the batch's byte cap (one file at least, whatever its size); files gone
        for good are skipped and counted as thinned, a file still on its way ends the batch before it."""
        while True:
            was = outbox.cursor(self.conn, "evidence", prio)
            rows = outbox.unbatched(self.conn, "evidence", prio, was.batched_id, records)
            kept, gone, gone_kept, last_gone = self._read_evidence(rows, max_bytes, was.batched_id)
            if kept:
                break
            if not gone:
                return None
            # only files gone for good: move past them (the next batch reports them) and look again
            skip = functools.partial(
                outbox.skip, stream="evidence", prio=prio, was=was, upto_id=last_gone, gone=gone
            )
            skipped = self.store.call(skip, flush=False)
            if not skipped.result(timeout=STORE_TIMEOUT_S):
                return None
        header = self._header("evidence", prio, kept, was, was.thinned + gone_kept)
        payload = encode_evidence(header, kept)
        batch = Batch(
            "evidence", prio, was.next_seq, kept[0][0], kept[-1][0], len(kept), time.time(), payload
        )
        return self._keep(batch, was)

    def _read_evidence(
        self, rows: list[Any], max_bytes: int, last_gone: int
    ) -> tuple[list[EvidenceRow], int, int, int]:
        """The files to send, how many are gone for good, how many of those lie before the last file kept,
        and the id of the last one gone."""
        kept: list[EvidenceRow] = []
        gone = gone_kept = size = 0
        for rid, ts, event_id, kind, name in rows:
            data = read_own_file(self.evidence / name)  # a planted link or another's file: as if missing
            if data is None:
                now = self.clock()
                if now - self._missing.setdefault(rid, now) < EVIDENCE_WAIT_S:
                    break
                del self._missing[rid]
                gone, last_gone = gone + 1, rid
                continue
            self._missing.pop(rid, None)
            if kept and size + len(data) > max_bytes:
                break
            media = MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
            kept.append((rid, ts, event_id, kind, name, media, data))
            size, gone_kept = size + len(data), gone
        return kept, gone, gone_kept, last_gone

    def _header(
        self, stream: str, prio: Priority, rows: list[Any], was: outbox.Cursor, thinned: int
    ) -> BatchHeader:
        return BatchHeader(
            device=self.device,
            store=self.store_id,
            stream=stream,
            priority=prio.label,
            seq=was.next_seq,
            first_id=rows[0][0],
            last_id=rows[-1][0],
            count=len(rows),
            thinned=thinned,
            created=time.time(),
        )

    def _encode(self, stream: str, prio: Priority, rows: list[Any], was: outbox.Cursor, level: int) -> bytes:
        header = self._header(stream, prio, rows, was, was.thinned)
        if stream == "readings":
            return encode_readings(header, rows, level)
        return encode_events(header, rows, level)

    def waiting(self) -> list[Batch]:
        return outbox.waiting(self.conn)

    def backlog(self) -> dict[Priority, tuple[int, float | None]]:
        return outbox.backlog(self.conn)

    def acknowledged(self, batch: Batch) -> None:
        """The upstream has it: drop it from the outbox (queued to the writer; nothing waits for it)."""
        removed = self.store.call(
            lambda conn: outbox.remove_batch(conn, batch.key), flush=False, urgent=False
        )
        removed.add_done_callback(outbox.forget_payload)
