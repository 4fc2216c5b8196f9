"""The service contract: built from config, start(), stop(), status(); a failing run is restarted."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from appliance.status.service import ServiceStatus
from drivers.backoff import Backoff

log = logging.getLogger(__name__)


RECANCEL_S = 0.05


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end, cancelling again until it does: a cancellation can be lost.
    (In Python 3.11, asyncio.wait_for returns an answer that arrives with the cancellation and drops the
    cancellation: a Modbus poll's answer racing a stop kept the poller polling and the stop waiting.)"""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s ended with %s: %s", task.get_name(), type(exc).__name__, exc)


class Service:
    """A long-running part of the appliance.

    Subclasses override `open()`/`close()` for resources held while started and `run()` for their
    main loop. A `run()` that raises is logged, counted and restarted with exponential backoff; it
    never takes the process down. `status()` is its typed section of the status document.
    """

    name: str = "service"
    backoff_initial_s = 0.5
    backoff_max_s = 30.0
    # Deadlines the runtime holds each service to (appliance/lifecycle.py): past its start deadline the
    # rest start without it; past its stop deadline it is reported and left. `stop_reserve_s` is kept free
    # for its stop however much the services stopped before it overran (a child to end, the store to flush).
    start_timeout_s = 5.0
    stop_timeout_s = 0.5
    stop_reserve_s = 0.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._active = False
        self.restarts = 0
        self.last_error: str | None = None

    async def open(self) -> None:
        """Acquire what the service needs; an exception here fails start()."""

    async def run(self) -> None:
        """The main loop; services without one return at once."""

    async def close(self) -> None:
        """Release what open() acquired; must not raise."""

    async def start(self) -> None:
        await self.open()
        self._active = True
        self._task = asyncio.create_task(self._supervise(), name=f"service:{self.name}")

    async def stop(self) -> None:
        self._active = False
        if self._task is not None:
            await cancel(self._task)
            self._task = None
        await self.close()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task running `run()` (and its restarts), while started."""
        return self._task

    @property
    def running(self) -> bool:
        """Started and not yet stopped (a service without a loop is running while it is open)."""
        return self._active

    def status(self) -> ServiceStatus:
        """This service's section of the status document; a kind with figures of its own returns its own
        model (appliance/status), built on `basics()`."""
        return ServiceStatus(**self.basics())

    def basics(self) -> dict[str, Any]:
        """What every service reports: running, restarts, the last error."""
        return {"running": self.running, "restarts": self.restarts, "last_error": self.last_error}

    async def _supervise(self) -> None:
        # a run that lasted ten of the longest waits ran well: its crash is restarted quickly again
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s, fresh_after_s=10 * self.backoff_max_s)
        while True:
            began = time.monotonic()
            try:
                await self.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = backoff.next(ran_s=time.monotonic() - began)
                log.error(
                    "%s failed (%s); restart %d in %.1f s",
                    self.name,
                    self.last_error,
                    self.restarts,
                    delay,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                await asyncio.sleep(delay)
