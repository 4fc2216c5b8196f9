"""The writer thread's work: a batch of records into the journal (critical ones into the database at
once), a flush of what the journal holds into the database, ops in a transaction; with the quota
checked after each write of records to the database (quota.Watch), the bytes written measured
(wear.Meter), and counts of it all."""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from appliance.config.models import StoreSettings
from appliance.records import Event, Reading
from appliance.store import aside, outbox, quota, wear
from appliance.store.intake import Intake, Taken
from appliance.store.spool import Spool
from appliance.store.tables import Tables

log = logging.getLogger(__name__)

T = TypeVar("T")
FLUSH_RECORDS = 50_000  # held past this many, they are flushed at once: a bound on memory and the journal
MAX_HELD = 500_000  # and when flushes fail (a full disk), past this many new records are dropped
RETRY_S = 1.0


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the transaction, if SQLite has not already (it ends one itself on SQLITE_FULL and IOERR); a
    ROLLBACK without one would raise and hide the error that matters."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class Commits:
    def __init__(
        self,
        db: sqlite_utils.Database,
        tables: Tables,
        spool: Spool,
        settings: StoreSettings,
        listeners: list[Callable[[bool], None]],
    ) -> None:
        self.db, self.conn, self.tables, self.spool = db, db.conn, tables, spool
        self.settings, self.listeners = settings, listeners
        self.intake: Intake | None = None
        self.held = Taken()  # in the journal, not yet in the database; other threads read held.events
        self._flush_at = math.inf
        self._unjournaled = 0  # held records whose journal frame failed: a crash would lose them
        self.rows = self.events = self.count = self.flushes = 0
        self.errors = self.journal_errors = self.dropped = 0
        self.last_ms = 0.0
        self.meter = wear.Meter()
        self.quota = quota.Watch(self.conn, settings.quota_mb, self.meter.account)
        self._error_logged = -10.0

    @property
    def held_count(self) -> int:
        return len(self.held)

    @property
    def over_quota(self) -> bool:
        return self.quota.over_quota

    def recover(self, folder: Path) -> None:
        """Put into the database what a killed process left in the journal and drop the batches whose
        payload a power cut lost; then start a new generation. `folder`: where those are kept."""
        self._transaction(lambda: aside.remember(self.conn, folder))
        applied = int(
            self.conn.execute("SELECT value FROM store_meta WHERE key = 'spool_applied'").fetchone()[0]
        )
        left = Taken()
        for _, frame in self.spool.recover(applied):
            left.extend(Taken.of(frame))
        if len(left) or self.spool.generation > applied:
            self.tables.next_reading = self._transaction(lambda: self._insert(left, self.spool.generation))
            self.rows += len(left.readings)
            self.events += len(left.events)
            if len(left):
                log.info("store: %d records the journal kept put into the database", len(left))
        if lost := self._transaction(lambda: outbox.drop_lost(self.conn)):
            log.warning(
                "store: %d records of batches whose payload a power cut lost are reported thinned", lost
            )
        self.spool.start()

    def begin(self) -> None:
        """On the writer's thread, before its first commit."""
        self.meter.begin()

    def until_flush(self) -> float | None:
        """Seconds to the next flush; None while nothing waits for one."""
        if math.isinf(self._flush_at):
            return None
        return max(0.0, self._flush_at - time.monotonic())

    def commit(self, batch: Sequence[Reading | Event]) -> None:
        assert self.intake is not None
        critical, other = self.intake.take(batch)
        if len(critical):
            self._critical(critical)
        if len(other):
            self._journal(other)

    def flush(self, final: bool, stopping: bool) -> None:
        """Everything the journal holds into the database, in one transaction."""
        held = self.held
        if not len(held):
            return
        # Batches the upstream has left unacknowledged for a whole interval (it is away) go into the
        # database with the flush: a power cut would lose their payloads aside, and then their records.
        made_before = time.time() - self.settings.flush_s
        moved: list[Path] = []

        def flush() -> int:
            next_reading = self._insert(held, self.spool.generation)
            moved.extend(outbox.keep_in_database(self.conn, made_before))
            return next_reading

        try:
            self.tables.next_reading = self._transaction(flush)
        except sqlite3.Error as exc:
            self.errors += 1
            if stopping:
                lost, self.dropped = self._unjournaled, self.dropped + self._unjournaled
                log.error(
                    "store: could not commit %d records at stop: %s (%d left in the journal for the next"
                    " start, %d lost)",
                    len(held),
                    exc,
                    len(held) - lost,
                    lost,
                )
            else:
                self._log_error("store flush of %d records failed (%s); retrying in 1 s", len(held), exc)
                self._flush_at = time.monotonic() + RETRY_S
            return
        outbox.remove_aside(moved)
        self.rows += len(held.readings)
        self.flushes += 1
        self.held, self._unjournaled, self._flush_at = Taken(), 0, math.inf
        if not final:
            try:
                self.spool.start()
            except OSError as exc:
                self.journal_errors += 1
                self._log_error("store journal: %s; records wait in memory only", exc)
        self._tell(False)

    def run(self, ops: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]]) -> None:
        """Ops in one transaction, each in a savepoint of its own: one that raises is undone alone. Each
        learns its result once the transaction has committed (a batch must be kept before it is sent)."""
        ops = [(fn, future) for fn, future in ops if future.set_running_or_notify_cancel()]
        if not ops:
            return
        results: list[tuple[bool, Any]] = []

        def each() -> None:
            for fn, _ in ops:
                self.conn.execute("SAVEPOINT op")
                try:
                    results.append((True, fn(self.conn)))
                except Exception as exc:
                    self.conn.execute("ROLLBACK TO op")
                    results.append((False, exc))
                self.conn.execute("RELEASE op")

        try:
            self._transaction(each)
        except Exception as exc:
            for _, future in ops:
                future.set_exception(exc)
            return
        for (_, future), (ok, result) in zip(ops, results, strict=True):
            if ok:
                future.set_result(result)
            else:
                future.set_exception(result)

    def close(self) -> None:
        """After the writer's last flush: a journal with nothing left in it goes, and the payloads of
        batches still waiting move into the database, which outlives a reboot."""
        if len(self.held):
            self.spool.close()
        else:
            self.spool.remove()
        try:
            outbox.remove_aside(self._transaction(lambda: outbox.keep_in_database(self.conn)))
        except (sqlite3.Error, OSError) as exc:
            log.error("store: the batches waiting stay aside only: %s", exc)
        with contextlib.suppress(OSError):  # left behind only if something is still in it
            self.spool.paths[0].parent.rmdir()

    def _critical(self, taken: Taken) -> None:
        try:
            self.tables.next_reading = self._transaction(lambda: self._insert(taken, None))
        except sqlite3.Error as exc:
            self.errors += 1
            self._log_error("store commit failed (%s); the records wait in the journal", exc)
            self._journal(taken)
            self._flush_at = min(self._flush_at, time.monotonic() + RETRY_S)
            return
        self.rows += len(taken.readings)
        self.events += len(taken.events)
        self._tell(True)

    def _journal(self, taken: Taken) -> None:
        if len(self.held) >= MAX_HELD:
            self.dropped += len(taken)
            self._log_error(
                "store: %d records wait for a flush that fails: %d dropped", len(self.held), len(taken)
            )
            return
        began = time.perf_counter()
        try:
            try:
                self.spool.append(taken.frame())
            except ValueError:  # a value marshal does not take (a numpy number): as plain Python ones
                taken = taken.plain()
                self.spool.append(taken.frame())
        except OSError as exc:
            self.journal_errors += 1
            self._unjournaled += len(taken)
            self._log_error("store journal: %s; records wait in memory only", exc)
        if not len(self.held):  # the first records after a start go into the database at once: a box
            # just (re)started shows stored readings without waiting a whole interval
            self._flush_at = time.monotonic() + (self.settings.flush_s if self.flushes else 0.0)
        self.held.readings.extend(taken.readings)
        self.held.evidence.extend(taken.evidence)
        if taken.events:
            self.held.events = self.held.events + taken.events  # a new list: readers hold the old one
        self.events += len(taken.events)
        self.count += 1
        self.last_ms = (time.perf_counter() - began) * 1000
        if len(self.held) >= FLUSH_RECORDS:
            self._flush_at = 0.0
        self.meter.account()

    def _insert(self, taken: Taken, applied: int | None) -> int:
        return self.tables.insert(taken.readings, taken.events, taken.evidence, applied)

    def _transaction(self, work: Callable[[], T]) -> T:
        began = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = work()
            self.conn.execute("COMMIT")
        except BaseException:
            _rollback(self.conn)
            self.tables.reload()  # ids handed out in the rolled-back transaction are free again
            raise
        finally:
            self.meter.account()
        self.count += 1
        self.last_ms = (time.perf_counter() - began) * 1000
        return result

    def _tell(self, critical: bool) -> None:
        for listener in self.listeners:
            listener(critical)
        self.quota.check()

    def _log_error(self, message: str, *args: object) -> None:
        if time.monotonic() - self._error_logged >= 10.0:  # a failing disk is a line now and then
            self._error_logged = time.monotonic()
            log.error(message, *args)
