"""Modbus RTU: one master per serial line. A single thread owns the port and runs every transaction of
every slave on the line in turn, writes first; it keeps the inter-frame silence (3.5 characters, 1.75 ms
above 19200 baud), sizes each timeout from the frame lengths at the line's baud rate plus the slave's
turnaround, and rests a slave that stops answering so it cannot stall the others. It finds each answer
among whatever else the line carries and bounds every transaction in time and bytes, so a babbling device
cannot hold the line either.

Frames are built and parsed with pymodbus's PDU classes and RTU CRC (rtu_frames.py); the port I/O and its
timing are ours, because they are what an RS-485 line needs and a general client does not give.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import itertools
import logging
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import serial

from drivers.backoff import Backoff
from drivers.modbus.errors import FailureKind, ReadFailure
from drivers.modbus.planner import Block
from drivers.modbus.rtu_frames import (
    decode_answer,
    find_answer,
    missing_bytes,
    no_answer,
    request_frame,
    response_length,
)
from drivers.serial.format import SerialFormat
from drivers.worker import Worker

log = logging.getLogger(__name__)

RTU_FORMAT = SerialFormat(19200)  # the usual RTU line, 19200 8N1
# failures after which a slave counts as not answering: nothing, or nothing that was an answer
_UNANSWERED = (FailureKind.TIMEOUT, FailureKind.BAD_CRC, FailureKind.BAD_RESPONSE)


@dataclass(frozen=True, slots=True)
class RtuBusSettings:
    """An RS-485 line with Modbus RTU slaves on it: a pyserial URL and its character format."""

    url: str
    format: SerialFormat = RTU_FORMAT

    @property
    def char_time_s(self) -> float:
        return self.format.char_time_s

    @property
    def silence_s(self) -> float:
        """The inter-frame gap the standard requires: 3.5 characters, fixed at 1.75 ms above 19200 baud."""
        return 3.5 * self.char_time_s if self.format.baudrate <= 19200 else 0.00175

    def wire_time_s(self, nbytes: int) -> float:
        return self.format.wire_time_s(nbytes)


@dataclass
class _Job:
    priority: int  # 0 writes, 1 polls
    unit: int
    frame: bytes
    expect: int
    timeout_s: float
    future: concurrent.futures.Future[bytes] = field(default_factory=concurrent.futures.Future)


class Priority(enum.IntEnum):
    WRITE = 0
    POLL = 1


@dataclass
class _SlaveState:
    rest: Backoff  # how long a slave that keeps failing to answer rests: growing, afresh once it answers
    failures_in_row: int = 0
    rest_until: float = 0.0


class RtuBus:
    """The master of one line. `submit()` is thread-safe; answers come back as futures."""

    rest_after_failures = 2  # consecutive transactions without an answer before a slave is rested
    max_heard_bytes = 1024  # in one transaction: a flood (a babbler on an unpaced adapter) is cut off here
    rest_initial_s = 1.0
    rest_max_s = 30.0

    def __init__(self, settings: RtuBusSettings) -> None:
        self.settings = settings
        self._jobs: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._slaves: dict[int, _SlaveState] = {}
        self._port: serial.SerialBase | None = None
        # the bus thread sleeps on its job queue: a stop wakes it with an empty job
        self._worker = Worker(
            f"rtu:{settings.url}", self._run, join_s=2.0, wake=lambda: self._jobs.put((-1, -1, None))
        )
        self._last_activity = 0.0  # monotonic time the line last went quiet
        self.counts = {"transactions": 0, "garbage_bytes": 0, "reopens": 0, "resync_cutoffs": 0}
        self.busy_s = 0.0

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()
        self._close_port()

    def submit(
        self, unit: int, frame: bytes, expect: int, turnaround_s: float, priority: Priority = Priority.POLL
    ) -> concurrent.futures.Future[bytes]:
        """Queue one transaction; the future holds the response frame or a ReadFailure."""
        wire = self.settings.wire_time_s(len(frame) + expect)
        job = _Job(int(priority), unit, frame, expect, wire + turnaround_s + 2 * self.settings.silence_s)
        state = self._slave(unit)
        if priority is Priority.POLL and time.monotonic() < state.rest_until:
            job.future.set_exception(
                ReadFailure(FailureKind.BACKED_OFF, f"unit {unit} resting: no answer lately")
            )
            return job.future
        self._jobs.put((job.priority, next(self._order), job))
        return job.future

    def status(self) -> dict[str, Any]:
        return {
            "url": self.settings.url,
            "baudrate": self.settings.format.baudrate,
            **self.counts,
            "busy_s": round(self.busy_s, 3),
            "queued": self._jobs.qsize(),
            "resting_units": sorted(u for u, s in self._slaves.items() if s.rest_until > time.monotonic()),
        }

    def _run(self) -> None:
        while True:
            _, _, job = self._jobs.get()
            if job is None:
                return
            if job.future.set_running_or_notify_cancel():
                began = time.monotonic()
                try:
                    job.future.set_result(self._transact(job))
                except ReadFailure as failure:
                    job.future.set_exception(failure)
                except Exception as exc:  # a driver bug must not kill the line for everyone
                    log.exception("rtu transaction failed")
                    job.future.set_exception(ReadFailure(FailureKind.BAD_RESPONSE, f"internal error: {exc}"))
                self.busy_s += time.monotonic() - began

    def _open(self) -> serial.SerialBase:
        if self._port is None:
            s = self.settings
            try:
                self._port = serial.serial_for_url(s.url, **s.format.pyserial(), timeout=0)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise ReadFailure(FailureKind.DISCONNECTED, f"cannot open {s.url}: {exc}") from exc
            self.counts["reopens"] += 1
        return self._port

    def _close_port(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _transact(self, job: _Job) -> bytes:
        port = self._open()
        state = self._slave(job.unit)
        answered = False
        try:
            self._wait_silence()
            port.timeout = 0  # only what is already there
            if stale := port.read(4096):  # bytes nobody asked for: a late answer, noise, a babbler
                self.counts["garbage_bytes"] += len(stale)
            port.write(job.frame)
            port.flush()
            sent = time.monotonic()
            answer = self._read_answer(port, job, sent)
            answered = True
        except (serial.SerialException, OSError) as exc:
            self._close_port()
            raise ReadFailure(FailureKind.DISCONNECTED, f"{self.settings.url}: {exc}") from exc
        except ReadFailure as failure:
            if failure.kind in _UNANSWERED:
                state.failures_in_row += 1
                if state.failures_in_row >= self.rest_after_failures:
                    state.rest_until = time.monotonic() + state.rest.next()
            raise
        finally:
            if not answered:
                self._last_activity = time.monotonic()  # after a timeout or a bad frame: quiet from now
            self.counts["transactions"] += 1
        state.failures_in_row = 0
        state.rest.reset()
        return answer

    def _slave(self, unit: int) -> _SlaveState:
        state = self._slaves.get(unit)
        if state is None:  # setdefault: submit() and the bus thread may meet a new unit at once
            state = self._slaves.setdefault(unit, _SlaveState(Backoff(self.rest_initial_s, self.rest_max_s)))
        return state

    def _wait_silence(self) -> None:
        gap = self._last_activity + self.settings.silence_s - time.monotonic()
        if gap > 0:
            time.sleep(gap)

    def _read_answer(self, port: serial.SerialBase, job: _Job, sent: float) -> bytes:
        """The answer among what the line brings: bytes around it are garbage, counted and skipped. Done
        when a whole answer with a bad CRC is followed by a silence (a bad answer, over), at the deadline
        (moved once for the rest of an answer under way), or at `max_heard_bytes`: however busy a babbler
        keeps the line, never later."""
        s = self.settings
        deadline = sent + s.wire_time_s(len(job.frame)) + job.timeout_s
        buf = bytearray()
        quiet = late = False  # the line fell silent after a bad answer; the deadline was moved
        while (found := find_answer(buf, job.frame, job.expect)) is None:
            missing = missing_bytes(buf, job.frame, job.expect)
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not late and missing > 0:
                # an answer under way, made late by babble ahead of it on the line: let its rest come
                late, remaining = True, s.wire_time_s(missing) + s.silence_s
                deadline = time.monotonic() + remaining
            if remaining <= 0 or len(buf) >= self.max_heard_bytes:
                break
            over = missing == 0  # a whole answer is here, and bad: wait one silence for anything more
            port.timeout = min(remaining, s.silence_s if over else max(s.char_time_s * 2, 0.001))
            chunk = port.read(max(missing, job.expect - len(buf), 1))
            if not chunk and over and port.timeout >= s.silence_s:
                quiet = True
                break
            buf += chunk
        if found is None:
            self.counts["garbage_bytes"] += len(buf)
            if not buf:
                raise ReadFailure(
                    FailureKind.TIMEOUT, f"unit {job.unit}: no answer in {job.timeout_s * 1000:.1f} ms"
                )
            if not quiet:  # the rest of a bad answer, if it is one, before the next request
                self._resync(port, s.wire_time_s(job.expect) + s.silence_s)
            raise no_answer(buf, job.frame, job.expect)
        start, end = found
        self.counts["garbage_bytes"] += len(buf) - (end - start)
        self._last_activity = time.monotonic()  # the line went quiet now; silence counts from here
        return bytes(buf[start:end])

    def _resync(self, port: serial.SerialBase, most_s: float) -> None:
        """Swallow bytes until the line has been quiet for one silence, for at most `most_s`: a device that
        never stops sending cannot hold the bus thread here (counted in `resync_cutoffs`)."""
        s = self.settings
        end = time.monotonic() + most_s
        while (left := end - time.monotonic()) > 0:
            port.timeout = min(s.silence_s, left)
            chunk = port.read(4096)
            if not chunk and port.timeout >= s.silence_s:
                return
            self.counts["garbage_bytes"] += len(chunk)
        self.counts["resync_cutoffs"] += 1


class ModbusRtuClient:
    """One slave on a line, with the same face as the TCP client so one poller serves both."""

    def __init__(self, bus: RtuBus, unit: int, turnaround_s: float) -> None:
        self.bus, self.unit, self.turnaround_s = bus, unit, turnaround_s

    @property
    def connected(self) -> bool:
        return True  # the bus opens and reopens its port; resting slow slaves is its job too

    async def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def read(self, block: Block) -> Sequence[int] | Sequence[bool]:
        future = self.bus.submit(
            self.unit, request_frame(self.unit, block), response_length(block), self.turnaround_s
        )
        return decode_answer(await asyncio.wrap_future(future), block)
