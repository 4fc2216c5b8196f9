"""The sync service: drains the outbox upstream, most important class first, as far as the link tier allows.

One thread decides what to send: batches the store still holds from before (a crash, a restart) go first,
then per class in priority order (events before readings, oldest first) new batches are packed, as long as
fewer than `max_inflight` wait for their acknowledgement. Critical records go at once; another class waits
for its tier's interval, or until a full batch is ready, and then drains its whole backlog. A batch leaves
the outbox only when the transport reports the upstream's acknowledgement.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from pathlib import Path

from appliance.config.sync import SyncSettings
from appliance.records import Priority
from appliance.service import Service
from appliance.status.sync import SyncStatus, UpstreamStatus
from appliance.store import Store
from appliance.store.outbox import Batch
from appliance.sync.linkmeter import LinkMeter
from appliance.sync.packer import BatchPacker
from appliance.sync.policy import rules_from, thresholds_from
from appliance.sync.tiers import LinkTier, TierRule
from appliance.sync.transport import Transport, build_transport

log = logging.getLogger(__name__)

STATUS_REFRESH_S = 1.0  # backlog counts are queries: at most this often
MEASURE_SPELL_S = 1.0  # a long busy spell of the window gives the meter one sample a second
# Within a class the few events go first, then readings, then the bulky evidence files.
STREAMS_IN_ORDER = ("events", "readings", "evidence")


class _Probe:
    """The token of a probe in flight."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.sent = time.monotonic()


class SyncService(Service):
    name = "sync"
    stop_timeout_s = 1.0  # the sending loop ends, the connection closes

    def __init__(
        self, settings: SyncSettings, store: Store, device: str, folder: Path, evidence: Path
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.device = device
        self.folder = folder  # relative paths of the config (TLS files) start here
        self.evidence = evidence  # where the files named by evidence rows are
        self.rules = rules_from(settings)
        self.meter = LinkMeter(
            thresholds_from(settings.thresholds),
            metered=settings.metered,
            link_kind=settings.link,
            max_tier=LinkTier[settings.max_tier.upper()] if settings.max_tier else None,
        )
        self.transport: Transport | None = None
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = False
        self._done = threading.Event()  # the loop has ended (set: none is running)
        self._done.set()
        self._inflight: dict[tuple[str, Priority, int], tuple[Batch, float]] = {}
        self._unsent: list[Batch] = []  # from the store at start, or timed out: sent again first
        self._draining: set[Priority] = set()
        self._drained_at: dict[Priority, float] = {}
        self._busy_since, self._busy_bytes = 0.0, 0  # since the window last became non-empty
        self._probe: _Probe | None = None  # the probe in flight
        self._backlog: dict[Priority, tuple[int, float | None]] = {}
        self._backlog_at = 0.0
        self.last_ok: float | None = None  # wall clock of the last acknowledgement
        self.batches_sent = self.batches_acked = self.records_acked = self.resent = 0
        self.payload_bytes = 0

    async def open(self) -> None:
        build_transport(self.settings.upstream, self.device, self.folder)  # bad TLS files fail the start
        self.store.listeners.append(self._committed)

    async def run(self) -> None:
        """The sending loop on a thread of its own; an error ends it and the service restarts it with
        backoff, with a new connection, from what the store holds."""
        packer = await asyncio.to_thread(BatchPacker, self.store, self.device, self.evidence)
        self.transport = build_transport(self.settings.upstream, self.device, self.folder)
        await asyncio.to_thread(self._loop, packer)

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(self._done.wait, self.stop_timeout_s)
        if self._committed in self.store.listeners:
            self.store.listeners.remove(self._committed)

    def _committed(self, critical: bool) -> None:
        if critical:  # critical records never wait for an interval
            self._wake.set()

    def _acked(self, token: object) -> None:
        self._acks.put(token)
        self._wake.set()

    def _state(self, up: bool) -> None:
        self.meter.connected() if up else self.meter.disconnected()
        self._wake.set()

    def _loop(self, packer: BatchPacker) -> None:
        assert self.transport is not None
        self._done.clear()
        self._inflight, self._unsent, self._probe = {}, packer.waiting(), None
        self._drained_at = dict.fromkeys(Priority, time.monotonic())
        self._acks = queue.SimpleQueue()  # acknowledgements of an earlier connection are nobody's now
        try:
            self.transport.start(self._acked, self._state)
            while not self._stopping:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
                self._take_acks(packer)
                if time.monotonic() - self._backlog_at >= STATUS_REFRESH_S:
                    self._backlog, self._backlog_at = packer.backlog(), time.monotonic()
                if self.transport.connected:
                    self._send(packer)
        finally:  # on an error the batches stay in the outbox for the next run
            self.transport.stop()
            self._take_acks(packer)
            packer.close()
            self.meter.disconnected()
            self._done.set()

    def _take_acks(self, packer: BatchPacker) -> None:
        now = time.monotonic()
        while True:
            try:
                token = self._acks.get_nowait()
            except queue.Empty:
                return
            if isinstance(token, _Probe):
                self.meter.transfer(token.nbytes, now - token.sent)
                self._probe = None
                continue
            assert isinstance(token, Batch)
            entry = self._inflight.pop(token.key, None)
            if entry is None:
                # Timed out and waiting to go again, or a second acknowledgement of a batch sent twice.
                if token not in self._unsent:
                    continue
                self._unsent.remove(token)
            else:
                self._measure(len(token.payload), now)
            packer.acknowledged(token)
            self.batches_acked += 1
            self.records_acked += token.count
            self.last_ok = time.time()

    def _measure(self, nbytes: int, now: float) -> None:
        """Tell the meter about the link: a busy spell's bytes over its duration, so that batches sent
        back to back measure the link rather than how long each waited behind the others."""
        self._busy_bytes += nbytes
        if not self._inflight or now - self._busy_since >= MEASURE_SPELL_S:
            self.meter.transfer(self._busy_bytes, max(now - self._busy_since, 1e-6))
            self._busy_since, self._busy_bytes = now, 0

    def _send(self, packer: BatchPacker) -> None:
        assert self.transport is not None
        rule = self.rules[self.meter.tier()]
        now = time.monotonic()
        for key, (late, sent) in list(self._inflight.items()):
            if now - sent > self.settings.ack_timeout_s:  # lost on the way: count it, send it again
                self.meter.failure()
                del self._inflight[key]
                self._unsent.insert(0, late)
        while len(self._inflight) < self.settings.max_inflight:
            batch = self._next(packer, rule, now)
            if batch is None:
                break
            if not self._inflight:
                self._busy_since, self._busy_bytes = time.monotonic(), 0
            self._inflight[batch.key] = (batch, time.monotonic())
            self.transport.send(batch.stream, batch.prio.label, batch.payload, batch)
            self.batches_sent += 1
            self.payload_bytes += len(batch.payload)
        if self._probe is not None and now - self._probe.sent > self.settings.ack_timeout_s:
            self.meter.failure()  # a probe that long on the way measured nothing but a bad link
            self._probe = None
        if not self._inflight and self._probe is None and (size := self.meter.probe_size()):
            self._probe = _Probe(size)  # one at a time: probes must not pile up in front of the batches
            self.transport.probe(os.urandom(size), self._probe)

    def _next(self, packer: BatchPacker, rule: TierRule, now: float) -> Batch | None:
        for i, waiting in enumerate(self._unsent):
            if waiting.prio in rule.classes and waiting.key not in self._inflight:
                self.resent += 1
                return self._unsent.pop(i)
        for prio in sorted(rule.classes):
            if not self._due(packer, prio, rule, now):
                continue
            for stream in STREAMS_IN_ORDER:
                batch = packer.pack(stream, prio, rule.batch_records, rule.batch_bytes, rule.zstd_level)
                if batch is not None:
                    return batch
            self._draining.discard(prio)  # nothing left of this class
            self._drained_at[prio] = now
        return None

    def _due(self, packer: BatchPacker, prio: Priority, rule: TierRule, now: float) -> bool:
        if prio is Priority.CRITICAL or prio in self._draining:
            return True
        if now - self._drained_at[prio] >= rule.interval_s or any(
            packer.has_full_batch(stream, prio, rule.batch_records) for stream in STREAMS_IN_ORDER
        ):
            self._draining.add(prio)
            return True
        return False

    def status(self) -> SyncStatus:
        now, backlog = time.time(), sorted(self._backlog.items())
        return SyncStatus(
            **self.basics(),
            **self.meter.status(),
            backlog={p.label: n for p, (n, _) in backlog},
            oldest_s={p.label: None if ts is None else round(now - ts, 1) for p, (_, ts) in backlog},
            last_ok=self.last_ok,
            inflight=len(self._inflight),
            batches_sent=self.batches_sent,
            batches_acked=self.batches_acked,
            records_acked=self.records_acked,
            resent=self.resent,
            payload_bytes=self.payload_bytes,
            wire_bytes=self.transport.bytes_sent if self.transport else 0,
            upstream=UpstreamStatus(**self.transport.status()) if self.transport else None,
        )
