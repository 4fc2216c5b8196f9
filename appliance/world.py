"""On a desktop, `appliance run` starts the bench's simulated world beside itself, as a child process.

The appliance never imports the bench: it starts `bench sim` like a user would and waits for it to
say it is listening, so the simulated devices are reached only over their real protocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from appliance.service import Service

log = logging.getLogger(__name__)

READY = "bench sim ready"  # the line `bench sim` prints once every part listens (bench/world.py)
READY_TIMEOUT_S = 20.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child: the kernel sends it SIGTERM if the appliance dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class WorldFailed(RuntimeError):
    """The simulated world did not come up; `exit_code` 2 means its config is invalid."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BenchWorld(Service):
    """The `bench sim` child process, restarted with backoff if it dies."""

    name = "bench"

    def __init__(self, config_path: Path) -> None:
        super().__init__()
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self.announced: list[str] = []
        self._drainer: asyncio.Task[None] | None = None

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
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=1.0)
        except TimeoutError:
            log.warning("bench sim ignored SIGTERM; killing it")
            proc.kill()
            await proc.wait()

    def details(self) -> dict[str, Any]:
        return {"pid": self.proc.pid if self.proc else None, "parts": len(self.announced)}

    async def _spawn(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench",
            "sim",
            "--config",
            str(self.config_path),
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            # its own process group: Ctrl-C at a terminal reaches the appliance, which stops it in order
            start_new_session=True,
        )
        try:
            await asyncio.wait_for(self._await_ready(), timeout=READY_TIMEOUT_S)
        except TimeoutError:
            await self.close()
            raise WorldFailed(f"bench sim was not ready within {READY_TIMEOUT_S:.0f} s", None) from None
        except WorldFailed:
            await self.close()
            raise
        log.info("bench sim started (pid %d): %s", self.proc.pid, "; ".join(self.announced))

    async def _await_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        self.announced = []
        while raw := await self.proc.stdout.readline():
            line = raw.decode(errors="replace").strip()
            if line == READY:
                self._drainer = asyncio.create_task(self._drain(self.proc.stdout))
                return
            self.announced.append(line)
        code = await self.proc.wait()
        raise WorldFailed(f"bench sim exited with code {code} before it was ready", code)

    @staticmethod
    async def _drain(stream: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            while await stream.readline():
                pass
