"""The store's inbox: what the event loop and worker threads hand the writer's thread (records, ops, the
stop), and the writer's loop that takes it all at once and commits it in its order.

Producers never block: past a bound, new records are dropped and counted. The writer takes everything
queued at once: one wake-up per commit, not one per write, so a busy event loop and the writer do not
hand the GIL back and forth for every poll.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from appliance.records import Event, Reading
from appliance.store.commits import Commits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Op:
    """Work for the writer's thread, in a transaction, in its place in the queue (Store.call())."""

    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]
    flush: bool  # first put what the journal holds into the database


Item = Sequence[Reading | Event] | Op | None  # None: the stop, after everything queued before it


class Inbox:
    """Queued records and ops, with the flags that wake the writer; `limit`: records queued and not yet
    committed, at most; `batch_max`: records in one commit, at most (a full batch need not wait)."""

    def __init__(self, limit: int, batch_max: int) -> None:
        self.limit, self.batch_max = limit, batch_max
        self._pending: collections.deque[Item] = collections.deque()
        self._arrived = threading.Event()  # something is queued
        self._wake = threading.Event()  # commit now: a critical record, a full batch, an op, the stop
        self._gathered = 0  # records queued since the writer last woke
        self._records_in = self._records_out = 0
        self._count_lock = threading.Lock()
        self.dropped = 0
        self._drop_logged = -10.0

    @property
    def pending(self) -> int:
        """Records queued and not yet committed."""
        return self._records_in - self._records_out

    def put(self, item: Item, urgent: bool) -> None:
        records = 0 if item is None or isinstance(item, Op) else len(item)
        if records and self.pending + records > self.limit:
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
        if (urgent or self._gathered >= self.batch_max) and not self._wake.is_set():
            self._wake.set()  # a full batch need not wait either
        if not self._arrived.is_set():
            self._arrived.set()

    def serve(self, commits: Commits, interval: float, stopping: threading.Event) -> None:
        """The writer's loop, until the stop: what is queued into commits after at most `interval` seconds,
        flushes when they are due. `stopping`: a flush that fails now is not retried (the stop has a
        deadline)."""
        commits.begin()
        while True:
            self._arrived.wait(commits.until_flush())
            self._arrived.clear()
            stop = False
            if self._pending:
                if not self._wake.is_set():  # let a batch's worth gather, unless something cannot wait
                    self._wake.wait(interval)
                self._wake.clear()
                self._gathered = 0
                stop = self._drain(commits, stopping)
            if stop or commits.until_flush() == 0.0:
                commits.flush(final=stop, stopping=stopping.is_set())
            if stop:
                break
        while self._pending:  # ops queued behind the stop are refused, not left hanging
            if isinstance(left := self._pending.popleft(), Op):
                left.future.set_exception(RuntimeError("store stopped"))

    def _drain(self, commits: Commits, stopping: threading.Event) -> bool:
        """Commit everything queued, in batches of at most batch_max; ops after the records queued before
        them, those without a flush together at the end; True at the stop."""
        batch: list[Reading | Event] = []
        ops: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]] = []
        while self._pending:
            item = self._pending.popleft()
            if item is None or isinstance(item, Op):
                if batch:
                    commits.commit(batch)
                    batch = []
                if item is None:
                    commits.run(ops)
                    return True
                if item.flush:
                    commits.run(ops)
                    ops = []
                    commits.flush(final=False, stopping=stopping.is_set())
                    commits.run([(item.fn, item.future)])
                else:
                    ops.append((item.fn, item.future))
                continue
            batch.extend(item)
            self._records_out += len(item)  # only this thread counts out
            if len(batch) >= self.batch_max:
                commits.commit(batch)
                batch = []
        if batch:
            commits.commit(batch)
        commits.run(ops)
        return False
