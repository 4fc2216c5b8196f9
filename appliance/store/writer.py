"""The store service: one writer thread that commits records in batches to SQLite in WAL mode.

Durability: a record counts as committed (`rows_committed`, `events_committed`) once its transaction has
committed. Committed records survive a crash or SIGKILL of the process. With `synchronous=NORMAL` in WAL
mode a power cut may lose the last commits but never corrupts the file. Records handed to `write()` but not
yet committed (at most `commit_interval_ms` of them) are lost on a crash; a critical record ends the wait
and is committed at once. On a clean stop everything queued is committed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import sqlite_utils

from appliance.config.models import StoreSettings
from appliance.records import Event, Priority, Quality, Reading, is_file_name
from appliance.service import Service
from appliance.store import queries, quota
from appliance.store.classes import Classifier
from appliance.store.migrations import check_not_newer, migrate, schema_version

log = logging.getLogger(__name__)

QUALITY_CODES = {Quality.OK: 0, Quality.STALE: 1, Quality.ERROR: 2}
# Records queued and not yet committed, at most (some 75 MB): past it new records are dropped and counted, so
# a stalled disk cannot take the memory and the poller never blocks.
MAX_PENDING_RECORDS = 500_000
# Keys of an event's data that name a file in the evidence folder, sent upstream in the evidence stream.
EVIDENCE_KINDS = ("thumbnail", "image")


ReadingRow = tuple[int, float, float | str | None, int, int]  # channel id, ts, value, quality, class


@dataclass(frozen=True, slots=True)
class Op:
    """Work for the writer's thread, in a transaction of its own, in its place in the queue."""

    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


def connect(path: Path) -> sqlite_utils.Database:
    """An autocommit connection with the store's pragmas, schema migrated."""
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None, check_same_thread=False))
    try:
        check_not_newer(db)  # before any pragma: a newer release's file is left exactly as it was
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
    except BaseException:
        db.conn.close()
        raise
    return db


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the transaction, if SQLite has not already (it ends one itself on SQLITE_FULL and IOERR); a
    ROLLBACK without one would raise and hide the error that matters."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _tell(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """From the writer's thread: the writer has ended. The loop may be closed already (a stop that left
    the writer behind), and then nobody is waiting."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(resolve)


def _written_bytes() -> int:
    """Bytes this thread has handed to write(2) so far: the WAL frames and the checkpoints' page writes."""
    try:
        with open("/proc/thread-self/io") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return 0


class Store(Service):
    """Owns the database file; everyone else hands it records through `write()`."""

    name = "store"
    start_timeout_s = 60.0  # a migration of a large database
    stop_timeout_s = 2.0  # the runtime stops it last, with what is left of its stop budget
    stop_reserve_s = 0.5  # but never less than this: the last commit

    def __init__(self, settings: StoreSettings, data_dir: Path) -> None:
        super().__init__()
        self.settings = settings
        self.path = data_dir / settings.path
        self.classes = Classifier(settings.classes)
        # The writer takes everything queued at once: one wake-up per commit, not one per write, so a busy
        # event loop and the writer do not hand the GIL back and forth for every poll.
        self._pending: collections.deque[Sequence[Reading | Event] | Op | None] = collections.deque()
        self._arrived = threading.Event()  # something is queued
        self._wake = threading.Event()  # commit now: a critical record, a full batch, an op, the stop
        self._gathered = 0  # records queued since the writer last woke
        self._batch_max = settings.batch_max
        self._records_in = self._records_out = 0
        self._written_seen = 0
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # a commit that fails now is not retried: the stop has a deadline
        self._ended: Callable[[], object] = lambda: None  # told on the writer's thread as it ends
        self._db: sqlite_utils.Database | None = None
        self._channels: dict[tuple[str, str], tuple[int, int]] = {}  # (device, channel) -> (id, class)
        # told after each commit, on the writer's thread, whether it held a critical record
        self.listeners: list[Callable[[bool], None]] = []
        self.rows_committed = 0
        self.events_committed = 0
        self.commits = 0
        self.dropped = 0
        self._drop_logged = -10.0
        self.commit_errors = 0
        self.last_commit_ms = 0.0
        self.bytes_written = 0
        self.evicted: dict[str, int] = {}  # "stream.class.delivered|thinned" -> records
        self.over_quota = False
        self.used_bytes = 0
        self.schema: int | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._db = await asyncio.to_thread(connect, self.path)
        self.schema = schema_version(self._db)
        self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._thread.start()
        log.info("store open at %s", self.path)

    async def close(self) -> None:
        if self._thread is not None:
            loop = asyncio.get_running_loop()
            ended: asyncio.Future[None] = loop.create_future()
            self._ended = lambda: _tell(loop, ended)
            self._stopping.set()
            self._enqueue(None, urgent=True)  # after everything already queued
            if self._thread.is_alive():
                await ended  # no worker thread waits on the writer: a stop past its deadline leaves it
            self._thread = None
        if self._db is not None:
            self._db.conn.close()
            self._db = None

    def write(self, records: Sequence[Reading | Event]) -> None:
        """Queue readings and events for the next commit; never blocks."""
        if records:
            self._enqueue(records, self._urgent(records))

    def _enqueue(self, item: Sequence[Reading | Event] | Op | None, urgent: bool) -> None:
        records = 0 if item is None or isinstance(item, Op) else len(item)
        if records and self.pending + records > MAX_PENDING_RECORDS:
            self.dropped += records
            if time.monotonic() - self._drop_logged >= 10.0:  # a flood of drops is one line, not thousands
                self._drop_logged = time.monotonic()
                log.warning("store queue full: %d records dropped so far", self.dropped)
            return
        with self._count_lock:  # producers are the event loop and worker threads
            self._records_in += records
        self._pending.append(item)
        self._gathered += records  # approximate (the writer resets it): only decides when to wake
        # Set only what is not set yet (Event.set takes a lock and notifies even then). Safe: the writer
        # clears a flag before it takes what is queued, so an item seen with its flag still set is taken.
        if (urgent or self._gathered >= self._batch_max) and not self._wake.is_set():
            self._wake.set()  # a full batch need not wait either
        if not self._arrived.is_set():
            self._arrived.set()

    def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Future[Any]:
        """Run `fn(conn)` on the writer thread in a transaction of its own, after what is queued before."""
        future: Future[Any] = Future()
        self._enqueue(Op(fn, future), urgent=True)
        return future

    def reader(self) -> sqlite3.Connection:
        """A read-only connection of the caller's own."""
        return queries.reader(self.path)

    @property
    def pending(self) -> int:
        """Records queued and not yet committed."""
        return self._records_in - self._records_out

    def details(self) -> dict[str, Any]:
        records = self.rows_committed + self.events_committed
        return {
            "path": str(self.path),
            "schema": self.schema,
            "rows_committed": self.rows_committed,
            "events_committed": self.events_committed,
            "commits": self.commits,
            "pending_records": self.pending,
            "dropped": self.dropped,
            "commit_errors": self.commit_errors,
            "last_commit_ms": round(self.last_commit_ms, 3),
            "used_mb": round(self.used_bytes / 1e6, 3),
            "quota_mb": self.settings.quota_mb,
            "over_quota": self.over_quota,
            "evicted": dict(self.evicted),
            "bytes_written_per_record": round(self.bytes_written / records, 1) if records else None,
        }

    def events_since(self, since_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """Committed events with id > since_id, oldest first."""
        return queries.events(self.path, "id > ? ORDER BY id LIMIT ?", (since_id, limit))

    def recent_events(self, kind_prefix: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest committed events whose kind starts with `kind_prefix`, newest first."""
        return queries.events(
            self.path,
            "kind >= ? AND kind < ? ORDER BY id DESC LIMIT ?",
            (kind_prefix, kind_prefix + "\uffff", limit),
        )

    def _write_loop(self) -> None:
        try:
            self._write_until_stopped()
        finally:
            self._ended()

    def _write_until_stopped(self) -> None:
        self._written_seen = _written_bytes()
        interval = self.settings.commit_interval_ms / 1000
        while True:
            self._arrived.wait()
            self._arrived.clear()
            if not self._pending:
                continue
            if not self._wake.is_set():  # let a batch's worth gather, unless something cannot wait
                self._wake.wait(interval)
            self._wake.clear()
            self._gathered = 0
            if self._drain():
                break
        while self._pending:  # ops queued behind the stop are refused, not left hanging
            if isinstance(left := self._pending.popleft(), Op):
                left.future.set_exception(RuntimeError("store stopped"))

    def _drain(self) -> bool:
        """Commit everything queued, in batches of at most batch_max, ops in their place; True at the stop."""
        batch: list[Reading | Event] = []
        while self._pending:
            item = self._pending.popleft()
            if item is None or isinstance(item, Op):
                if batch:
                    self._commit_until_done(batch)
                    batch = []
                if item is None:
                    return True
                self._run_op(item)
                continue
            batch.extend(item)
            self._records_out += len(item)  # only this thread counts out
            if len(batch) >= self.settings.batch_max:
                self._commit_until_done(batch)
                batch = []
        if batch:
            self._commit_until_done(batch)
        return False

    def _urgent(self, records: Sequence[Reading | Event]) -> bool:
        """A critical record among them: commit now rather than wait for the interval."""
        critical, classes = Priority.CRITICAL, self.classes
        if type(records[0]) is Reading and not classes.critical_sensors:
            return False  # the common case, a poll's readings with no critical sensor configured: no loop
        for record in records:
            if type(record) is Event:
                if classes.event(record) is critical:
                    return True
            elif classes.critical_sensors and classes.sensor(cast(Reading, record).sensor_id) is critical:
                return True
        return False

    def _run_op(self, op: Op) -> None:
        fn, future = op.fn, op.future
        if not future.set_running_or_notify_cancel():
            return
        assert self._db is not None
        conn = self._db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = self._account(lambda: fn(conn))
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _account(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        finally:  # one look at the counter per commit: what this thread wrote since the last look
            now = _written_bytes()
            self.bytes_written += now - self._written_seen
            self._written_seen = now

    def _commit_until_done(self, batch: list[Reading | Event]) -> None:
        while True:
            try:
                critical = self._account(lambda: self._commit(batch))
                break
            except sqlite3.Error as exc:
                self.commit_errors += 1
                if self._stopping.is_set():  # retried until the stop, then given up: it has a deadline
                    log.error("store: could not commit %d records at stop: %s", len(batch), exc)
                    self.dropped += len(batch)
                    return
                log.error("store commit failed (%s); retrying in 1 s", exc)
                self._stopping.wait(1.0)
        for listener in self.listeners:
            listener(critical)
        self._check_quota()

    def _commit(self, batch: list[Reading | Event]) -> bool:
        assert self._db is not None
        conn = self._db.conn
        began = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        try:
            events: list[Event] = []
            try:  # the common case: readings only, of channels seen before
                rows = self._rows(batch)
            except (KeyError, TypeError):  # a channel not seen before, or an event among them
                events = [e for e in batch if type(e) is Event]
                readings = [r for r in batch if type(r) is not Event]
                for r in readings:
                    self._channel(conn, cast(Reading, r))
                rows = self._rows(readings)
            conn.executemany(
                "INSERT INTO readings (channel_id, ts, value, quality, prio) VALUES (?, ?, ?, ?, ?)", rows
            )
            event_classes = [self._insert_event(conn, e) for e in events]
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            self._channels.clear()  # ids inserted in the rolled-back transaction are gone
            raise
        self.last_commit_ms = (time.perf_counter() - began) * 1000
        self.commits += 1
        self.rows_committed += len(rows)
        self.events_committed += len(events)
        critical = Priority.CRITICAL
        return critical in event_classes or (
            self.classes.critical_sensors and any(row[4] == critical for row in rows)
        )

    def _rows(self, readings: Sequence[Any]) -> list[ReadingRow]:
        """The rows to insert, if all are readings of known channels (else KeyError or TypeError). The hot
        loop of ingest: a Reading is a tuple (device, channel, value, unit, ts, quality), and one dict
        lookup gives its channel's id and class."""
        channels, codes = self._channels, QUALITY_CODES
        return [(c[0], r[4], r[2], codes[r[5]], c[1]) for r in readings for c in (channels[r[0], r[1]],)]

    def _insert_event(self, conn: sqlite3.Connection, event: Event) -> Priority:
        """One event (events are few), and a row in the outbox for each evidence file it names."""
        prio = self.classes.event(event)
        event_id = conn.execute(
            "INSERT INTO events (ts, kind, severity, source, message, data, prio)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.ts, event.kind, str(event.severity), event.source, event.message, event.data_json(), prio),
        ).lastrowid
        for kind in EVIDENCE_KINDS:
            name = event.data.get(kind)
            if isinstance(name, str) and is_file_name(name):
                conn.execute(
                    "INSERT INTO evidence (ts, event_id, kind, name, prio) VALUES (?, ?, ?, ?, ?)",
                    (event.ts, event_id, kind, name, self.classes.evidence(kind)),
                )
        return prio

    def _check_quota(self) -> None:
        assert self._db is not None
        conn = self._db.conn
        self.used_bytes = quota.used_bytes(conn)
        if self.used_bytes <= self.settings.quota_mb * 1e6:
            self.over_quota = False
            return
        try:
            done = self._account(lambda: quota.enforce(conn, int(self.settings.quota_mb * 1e6)))
        except sqlite3.Error as exc:
            log.error("store: eviction failed: %s", exc)
            return
        for how, counts in (("delivered", done.delivered), ("thinned", done.thinned)):
            for (stream, prio), n in counts.items():
                key = f"{stream}.{prio.label}.{how}"
                self.evicted[key] = self.evicted.get(key, 0) + n
        if done.total:
            log.warning("store over its quota: evicted %d records (%s)", done.total, self.evicted)
        if done.over_quota and not self.over_quota:
            log.error(
                "store still over its %.0f MB quota: only critical records are left", self.settings.quota_mb
            )
        self.over_quota = done.over_quota
        self.used_bytes = quota.used_bytes(conn)

    def _channel(self, conn: sqlite3.Connection, reading: Reading) -> tuple[int, int]:
        key = (reading.device, reading.channel)
        if (cached := self._channels.get(key)) is not None:
            return cached
        conn.execute(
            "INSERT INTO channels (device, channel, unit) VALUES (?, ?, ?)"
            " ON CONFLICT (device, channel) DO UPDATE SET unit = excluded.unit",
            (reading.device, reading.channel, reading.unit),
        )
        found = conn.execute("SELECT id FROM channels WHERE device = ? AND channel = ?", key).fetchone()
        self._channels[key] = (int(found[0]), int(self.classes.sensor(reading.sensor_id)))
        return self._channels[key]
