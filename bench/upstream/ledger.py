"""The receiver's SQLite ledger: every batch that arrived, each record's first delivery, and the totals."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.upstream.batches import BadBatch, Batch, parse

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    n INTEGER PRIMARY KEY,           -- arrival order
    received REAL NOT NULL,          -- wall-clock seconds
    source TEXT NOT NULL,            -- the MQTT topic, or "http <peer>"
    bytes INTEGER NOT NULL,          -- payload size
    batch_id TEXT,                   -- NULL for a batch that could not be decoded
    device TEXT, store TEXT, stream TEXT, class TEXT, seq INTEGER,
    first_id INTEGER, last_id INTEGER, count INTEGER, thinned INTEGER, created REAL,
    duplicate INTEGER NOT NULL DEFAULT 0,
    error TEXT                       -- why it could not be decoded
);
CREATE INDEX IF NOT EXISTS batches_id ON batches (batch_id);
CREATE TABLE IF NOT EXISTS records (
    device TEXT NOT NULL, store TEXT NOT NULL, stream TEXT NOT NULL, id INTEGER NOT NULL,
    class TEXT NOT NULL,
    arrival INTEGER NOT NULL,        -- order of first deliveries over the whole ledger
    batch_n INTEGER NOT NULL,        -- the batch that first delivered it
    deliveries INTEGER NOT NULL,
    PRIMARY KEY (device, store, stream, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS status (
    n INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    device TEXT NOT NULL,
    status TEXT NOT NULL,            -- "online", or "offline" from the appliance's last will
    retained INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one payload."""

    batch: Batch | None
    duplicate: bool = False
    error: str | None = None


class Ledger:
    """Thread-safe: MQTT's thread and the HTTP handlers write through one connection, one commit each."""

    def __init__(self, path: Path, files: Path | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.files = files  # evidence files are kept here, as FILES/DEVICE/NAME
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")  # `bench upstream --report` reads while we write
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.arrival = self.conn.execute("SELECT coalesce(max(arrival), 0) FROM records").fetchone()[0]

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def batch(self, payload: bytes, source: str, expect: tuple[str, str, str] | None = None) -> Outcome:
        """Decode and record a payload; `expect` is (device, stream, class) as its topic names them."""
        try:
            batch = parse(payload)
            named = (batch.header.device, batch.header.stream, batch.header.klass)
            if expect is not None and named != expect:
                raise BadBatch(f"topic says {'/'.join(expect)} but the batch is {'/'.join(named)}")
        except BadBatch as exc:
            with self.lock:
                self.conn.execute(
                    "INSERT INTO batches (received, source, bytes, error) VALUES (?, ?, ?, ?)",
                    (time.time(), source, len(payload), str(exc)),
                )
            return Outcome(None, error=str(exc))
        with self.lock:
            return self._record(batch, source, len(payload))

    def status(self, device: str, status: str, retained: bool) -> None:
        with self.lock:
            self.conn.execute(
                "INSERT INTO status (received, device, status, retained) VALUES (?, ?, ?, ?)",
                (time.time(), device, status, int(retained)),
            )

    def _record(self, batch: Batch, source: str, size: int) -> Outcome:
        h = batch.header
        if h.stream == "evidence" and self.files is not None:
            self._keep_files(h.device, batch)  # before the ledger says it has them
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            seen = conn.execute("SELECT 1 FROM batches WHERE batch_id = ? LIMIT 1", (h.batch_id,)).fetchone()
            n = conn.execute(
                "INSERT INTO batches (received, source, bytes, batch_id, device, store, stream, class, seq,"
                " first_id, last_id, count, thinned, created, duplicate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?, ?, ?, ?)",
                (time.time(), source, size, h.batch_id, h.device, h.store, h.stream, h.klass, h.seq,
                 h.first_id, h.last_id, h.count, h.thinned, h.created, int(seen is not None)),
            ).lastrowid  # fmt: skip
            start = self.arrival
            conn.executemany(
                "INSERT INTO records (device, store, stream, id, class, arrival, batch_n, deliveries)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1)"
                " ON CONFLICT (device, store, stream, id) DO UPDATE SET deliveries = deliveries + 1",
                [
                    (h.device, h.store, h.stream, r[0], h.klass, start + i, n)
                    for i, r in enumerate(batch.records, 1)
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.arrival = start + len(batch.records)
        return Outcome(batch, duplicate=seen is not None)

    def _keep_files(self, device: str, batch: Batch) -> None:
        assert self.files is not None
        folder = self.files / device
        folder.mkdir(parents=True, exist_ok=True)
        for _, _, _, _, name, _, data in batch.records:
            partial = folder / f".{name}.part"
            partial.write_bytes(data)
            partial.replace(folder / name)

    def report(self) -> dict[str, Any]:
        with self.lock:
            return report(self.conn)


def report(conn: sqlite3.Connection) -> dict[str, Any]:
    """Totals, and per (device, store, stream, class) what arrived, what repeated and what is missing.
    The store is part of the key because a new store file starts its sequence numbers again at 1."""
    groups: dict[str, dict[str, Any]] = {}
    for device, store, stream, klass, batches, duplicates, records, thinned, seqs in conn.execute(
        "SELECT device, store, stream, class, count(*), sum(duplicate), sum(count),"
        " sum(CASE WHEN duplicate THEN 0 ELSE thinned END), group_concat(DISTINCT seq)"
        " FROM batches WHERE batch_id IS NOT NULL GROUP BY device, store, stream, class"
    ):
        present = {int(s) for s in seqs.split(",")}
        groups[f"{device}/{store}/{stream}/{klass}"] = {
            "device": device, "store": store, "stream": stream, "class": klass,
            "batches": batches, "duplicate_batches": duplicates, "records": records, "thinned": thinned,
            "max_seq": max(present), "missing_seqs": sorted(set(range(1, max(present) + 1)) - present),
        }  # fmt: skip
    unique: dict[str, int] = defaultdict(int)
    violations: dict[str, int] = defaultdict(int)
    highest: dict[str, int] = {}
    for device, store, stream, klass, rid in conn.execute(
        "SELECT device, store, stream, class, id FROM records ORDER BY arrival"
    ):
        key = f"{device}/{store}/{stream}/{klass}"
        unique[key] += 1
        if rid < highest.get(key, rid):  # a record first seen after a later one of its class
            violations[key] += 1
        highest[key] = max(rid, highest.get(key, rid))
    for key, group in groups.items():
        group["unique_records"] = unique[key]
        group["duplicate_records"] = group["records"] - unique[key]
        group["order_violations"] = violations[key]
    bad = conn.execute("SELECT count(*) FROM batches WHERE batch_id IS NULL").fetchone()[0]
    errors = [row[0] for row in conn.execute("SELECT error FROM batches WHERE error IS NOT NULL ORDER BY n")]
    status = {
        device: {"status": text, "retained": bool(retained), "received": received}
        for device, text, retained, received in conn.execute(
            "SELECT device, status, retained, received FROM status WHERE n IN"
            " (SELECT max(n) FROM status GROUP BY device)"
        )
    }
    totals = {
        name: sum(group[name] for group in groups.values())
        for name in (
            "batches",
            "duplicate_batches",
            "records",
            "unique_records",
            "duplicate_records",
            "thinned",
        )
    }
    return totals | {
        "bad_batches": bad,
        "errors": errors[-20:],
        "bytes": conn.execute("SELECT coalesce(sum(bytes), 0) FROM batches").fetchone()[0],
        "missing_seqs": sum(len(group["missing_seqs"]) for group in groups.values()),
        "order_violations": sum(violations.values()),
        "status": status,
        "streams": groups,
    }
