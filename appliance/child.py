"""Child processes of the runtime (the simulated world, the safety supervisor): each in a session of its
own, told by the kernel to end with the runtime, awaited for the line that says it is ready, and stopped
politely first, then firmly."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
REAP_S = 0.5  # a child killed at the end of a stop is waited for this long
_drainers: set[asyncio.Task[None]] = set()
_children: set[asyncio.subprocess.Process] = set()  # started and not yet seen to exit


class NotReady(RuntimeError):
    """The child exited (`exit_code`) or stayed silent (None) before its ready line."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def die_with_parent() -> None:
    """Runs in the child: the kernel sends it SIGTERM if the runtime dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def start(*args: str, ready: str, timeout_s: float) -> tuple[asyncio.subprocess.Process, list[str]]:
    """`python -m ARGS` started and ready; also the lines it printed before its ready line. Its own process
    group: Ctrl-C at a terminal reaches the runtime, which stops its children in order."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",  # the current directory stays off the import path: nothing there can pose as our code
        "-m",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        preexec_fn=die_with_parent,
        start_new_session=True,
    )
    _children.difference_update([p for p in _children if p.returncode is not None])
    _children.add(proc)
    try:
        before = await asyncio.wait_for(_until(proc, ready), timeout=timeout_s)
    except asyncio.CancelledError:  # the runtime stops while the child starts: reap_all() waits for it
        proc.kill()
        raise
    except TimeoutError:
        await stop(proc)
        raise NotReady(f"{args[0]} {args[1]} was not ready within {timeout_s:.0f} s", None) from None
    except NotReady:
        await stop(proc)
        raise
    assert proc.stdout is not None
    drainer = asyncio.get_running_loop().create_task(_drain(proc.stdout))
    _drainers.add(drainer)  # the loop keeps only a weak reference to a task
    drainer.add_done_callback(_drainers.discard)
    return proc, before


async def stop(proc: asyncio.subprocess.Process, grace_s: float = 1.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `grace_s`."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=grace_s)
        except TimeoutError:
            log.warning("child %d ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            await proc.wait()
    _children.discard(proc)


async def reap_all(timeout_s: float = REAP_S) -> list[int]:
    """Kill every child still running and wait for them (at most `timeout_s`): the end of every stop,
    whatever happened to the services that own them. The pids killed."""
    alive = [p for p in _children if p.returncode is None]
    _children.clear()
    for proc in alive:
        log.warning("child %d still running at the end of the stop; killing it", proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    if alive:
        await asyncio.wait([asyncio.ensure_future(p.wait()) for p in alive], timeout=timeout_s)
    return [p.pid for p in alive]


async def _until(proc: asyncio.subprocess.Process, ready: str) -> list[str]:
    assert proc.stdout is not None
    before: list[str] = []
    while raw := await proc.stdout.readline():
        line = raw.decode(errors="replace").strip()
        if line == ready:
            return before
        before.append(line)
    code = await proc.wait()
    raise NotReady(f"exited with code {code} before it was ready", code)


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.readline():
            pass
