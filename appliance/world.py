"""On a desktop, `appliance run` starts the bench's simulated world beside itself, as a child process.

The appliance never imports the bench: it starts `bench sim` like a user would and waits for it to
say it is listening, so the simulated devices are reached only over their real protocols.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from appliance import child
from appliance.service import Service
from appliance.status.service import WorldStatus

log = logging.getLogger(__name__)

READY = "bench sim ready"  # the line `bench sim` prints once every part listens (bench/world.py)
READY_TIMEOUT_S = 20.0


class WorldFailed(RuntimeError):
    """The simulated world did not come up; `exit_code` 2 means its config is invalid."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BenchWorld(Service):
    """The `bench sim` child process, restarted with backoff if it dies."""

    name = "bench"
    start_timeout_s = READY_TIMEOUT_S + 2  # its own ready timeout fails the start first
    stop_timeout_s = 1.2  # SIGTERM, a second to end, SIGKILL
    stop_reserve_s = 0.2

    def __init__(self, config_path: Path) -> None:
        super().__init__()
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self.announced: list[str] = []

    async def open(self) -> None:
        await self._spawn()

    async def run(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            await self._spawn()
        assert self.proc is not None
        code = await self.proc.wait()
        raise WorldFailed(f"bench sim exited with code {code}", code)

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            await child.stop(proc)

    def status(self) -> WorldStatus:
        return WorldStatus(
            **self.basics(), pid=self.proc.pid if self.proc else None, parts=len(self.announced)
        )

    async def _spawn(self) -> None:
        args = ("bench", "sim", "--config", str(self.config_path))
        try:
            self.proc, self.announced = await child.start(*args, ready=READY, timeout_s=READY_TIMEOUT_S)
        except child.NotReady as exc:
            raise WorldFailed(f"bench sim {exc}", exc.exit_code) from None
        log.info("bench sim started (pid %d): %s", self.proc.pid, "; ".join(self.announced))
