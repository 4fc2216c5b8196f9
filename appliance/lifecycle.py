"""Bounded start and stop: the runtime's services started in order, each within a deadline, and stopped
within a budget, each within a deadline of its own.

A service whose start or stop overruns its deadline is reported with what it was doing (its tasks'
stacks) and left behind; the others still start, or still stop. Whatever is left when the stop is over
cannot hold the process: children are killed and reaped (appliance/child.py), and `BoundedLoop` ends
the event loop without waiting on tasks or worker threads that will not finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NoReturn

from appliance import child
from appliance.service import Service

log = logging.getLogger(__name__)

STOP_BUDGET_S = 2.0  # the whole stop; the systemd unit's TimeoutStopSec leaves a margin above it
MIN_STOP_S = 0.05  # even a service past the budget gets this long to close what it holds
LEFTOVER_S = 0.2  # tasks still running after the stop get this long to end when cancelled


@dataclass
class StopReport:
    """How a stop went: each service's time, the ones that overran, the children killed at the end."""

    seconds: float = 0.0
    took: dict[str, float] = field(default_factory=dict)
    overran: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.overran and not self.killed

    @property
    def outcome(self) -> str:
        """ "stopped in 0.41 s", and what overran if anything did."""
        overran = "" if self.clean else f" with {', '.join(self.overran) or 'no service'} overrunning"
        return f"stopped in {self.seconds:.2f} s{overran}"

    @property
    def slowest(self) -> str:
        """The three slowest stops: "bench 0.27 s, web 0.13 s, qc 0.12 s"."""
        ranked = sorted(self.took.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{name} {s:.2f} s" for name, s in ranked)


async def start_unless(start: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `start`; False if `stop` was set first (the start is then cancelled, given 0.5 s to end).
    A start that fails raises."""
    starting = asyncio.create_task(start, name="start")
    stopped = asyncio.create_task(stop.wait(), name="stop signal")
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if starting.done():
        starting.result()
        return True
    starting.cancel()
    await asyncio.wait({starting}, timeout=0.5)
    return False


def stacks(*tasks: asyncio.Task[Any] | None) -> str:
    """Where each task is suspended: its chain of awaits, innermost last, and what that one waits on."""
    out: list[str] = []
    for task in tasks:
        if task is None or task.done():
            continue
        frames: list[tuple[FrameType, int]] = []
        awaited: Any = task.get_coro()
        while (frame := getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)) is not None:
            frames.append((frame, frame.f_lineno))
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        out.append(f"task {task.get_name()}:")
        out += [line.rstrip() for line in traceback.StackSummary.extract(frames).format()]
        if awaited is not None:
            out.append(f"  waiting on {awaited!r}")
    return "\n".join(out) or "(no task running)"


class ServiceSet:
    """Services started one by one in their order. At the stop, every one of them except `stop_after` is
    stopped at once (a stop is mostly waiting: for a thread, a child, a connection), then each of
    `stop_after` in its order: the services that need the others gone first (the simulated world, once
    nothing polls it; the store, once nothing writes)."""

    def __init__(self, services: Sequence[Service], stop_after: Sequence[Service] = ()) -> None:
        self.services = list(services)
        self.stop_after = list(stop_after)
        self._started: list[Service] = []  # in start order, including one still starting
        self._starting: dict[Service, asyncio.Task[None]] = {}  # late starts still running

    @property
    def starting(self) -> list[str]:
        """Services that overran their start deadline and are still starting."""
        return [s.name for s in self._starting]

    async def start(self, until: Service | None = None) -> None:
        """Start each service not started yet in order, up to and including `until` (default: all). One
        that raises fails the start (the caller stops what started); one that overruns its
        `start_timeout_s` is reported and goes on starting beside the rest."""
        for service in self.services[len(self._started) :]:
            self._started.append(service)  # a stop from now on stops it too, however far it got
            task = asyncio.create_task(service.start(), name=f"start:{service.name}")
            try:
                done, _ = await asyncio.wait({task}, timeout=service.start_timeout_s)
            except asyncio.CancelledError:  # a stop while it starts: the stop cancels its start
                self._starting[service] = task
                raise
            if task in done:
                task.result()  # raises what the start raised
            else:
                self._late(service, task)
            if service is until:
                return

    def _late(self, service: Service, task: asyncio.Task[None]) -> None:
        self._starting[service] = task
        service.last_error = f"not started within {service.start_timeout_s:g} s; still starting"
        log.warning(
            "%s has not started within %.1f s; starting the rest without it. It is at:\n%s",
            service.name,
            service.start_timeout_s,
            stacks(task),
        )
        task.add_done_callback(lambda t: self._started_late(service, t))

    def _started_late(self, service: Service, task: asyncio.Task[None]) -> None:
        self._starting.pop(service, None)
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            service.last_error = f"start failed: {type(exc).__name__}: {exc}"
            log.error("%s failed to start: %s", service.name, service.last_error)
        else:
            service.last_error = None
            log.info("%s started late", service.name)

    async def stop(self, budget_s: float = STOP_BUDGET_S) -> StopReport:
        """Stop everything started within `budget_s` in all, then kill and reap any child process still
        there (whatever happened to the services that own them)."""
        began = time.monotonic()
        end = began + budget_s
        after = [s for s in self.stop_after if s in self._started]
        together = [s for s in self._started if s not in after]
        self._started = []
        report = StopReport()

        async def stop_within(service: Service, rest: Sequence[Service]) -> None:
            reserve = sum(s.stop_reserve_s for s in rest)  # kept free for those still to stop
            allowed = min(service.stop_timeout_s, end - time.monotonic() - reserve)
            at = time.monotonic()
            if not await self._stop_one(service, max(allowed, service.stop_reserve_s, MIN_STOP_S)):
                report.overran.append(service.name)
            report.took[service.name] = round(time.monotonic() - at, 3)

        await asyncio.gather(*(stop_within(s, after) for s in together))
        for i, service in enumerate(after):
            await stop_within(service, after[i + 1 :])
        report.killed = await child.reap_all()
        report.seconds = round(time.monotonic() - began, 3)
        return report

    async def _stop_one(self, service: Service, allowed: float) -> bool:
        """Stop one service within `allowed` seconds; False (and a log line saying where it was) if not."""
        starting = self._starting.pop(service, None)
        task = asyncio.create_task(self._cancel_then_stop(service, starting), name=f"stop:{service.name}")
        done, _ = await asyncio.wait({task}, timeout=allowed)
        if task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("%s did not stop cleanly: %s: %s", service.name, type(exc).__name__, exc)
            return True
        log.error(
            "%s did not stop within %.2f s; moving on. Its stop is at:\n%s\nIts work is at:\n%s",
            service.name,
            allowed,
            stacks(task),
            stacks(starting, service.task),
        )
        task.cancel()  # not awaited: a task that ignores cancellation must not hold the rest
        return False

    @staticmethod
    async def _cancel_then_stop(service: Service, starting: asyncio.Task[None] | None) -> None:
        if starting is not None:
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
        await service.stop()


class BoundedLoop:
    """Runs a coroutine in a new event loop like asyncio.run, but ends without waiting on what will not
    end: tasks still running are cancelled and given LEFTOVER_S, worker threads are not waited for
    beyond it. `clean` says whether everything ended. Leave with `leave()` afterwards: the interpreter's
    own exit would wait for every worker thread still busy."""

    def __init__(self) -> None:
        self.clean = True

    def run(self, main: Coroutine[Any, Any, None]) -> None:
        loop = asyncio.new_event_loop()
        executor = ThreadPoolExecutor(thread_name_prefix="worker")
        loop.set_default_executor(executor)
        asyncio.set_event_loop(loop)
        before = set(threading.enumerate())
        try:
            loop.run_until_complete(main)
        finally:
            self.clean = _wind_down(loop, executor, before)
            asyncio.set_event_loop(None)
            loop.close()


def _wind_down(
    loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor, before: set[threading.Thread]
) -> bool:
    """Cancel what is left, close the executor; False if a task or a thread started meanwhile is left."""
    leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in leftover:
        task.cancel()
    if leftover:
        loop.run_until_complete(asyncio.wait(leftover, timeout=LEFTOVER_S))
    stuck = [t for t in leftover if not t.done()]
    for task in stuck:
        log.error("task %s did not end; it is at:\n%s", task.get_name(), stacks(task))
    with contextlib.suppress(TimeoutError):
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), LEFTOVER_S))
    executor.shutdown(wait=False, cancel_futures=True)  # idle workers end; busy ones are not waited for
    deadline = time.monotonic() + LEFTOVER_S
    for thread in (started := [t for t in threading.enumerate() if t not in before and not t.daemon]):
        thread.join(max(0.0, deadline - time.monotonic()))
    busy = [t.name for t in started if t.is_alive()]
    if busy:
        log.error("threads still busy at exit: %s", ", ".join(busy))
    return not stuck and not busy


def leave(code: int) -> NoReturn:
    """Exit now with `code`, after flushing what was printed and logged; no thread is waited for."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
