"""The stop line as a safety fault run watches it: its level in the mock line's journal, held for a while or
dropping within a bound, reset through the API, and how a failed run says what failed."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness.http_json import post_json
from bench.harness.runtime import Runtime
from hal.gpio.mock import read_journal

CONTROL = "127.0.0.1:15099"  # the bench world's fault API (examples/bench.toml: [bench] control)


def line_level(journal: Path) -> int:
    rows = read_journal(journal)
    return rows[-1].level if rows else 0


def held_down(journal: Path, seconds: float, tripped: Callable[[], bool]) -> bool:
    """The wire stays down for `seconds`, and then the box says it is latched (asked at the end: the
    runtime's view follows the supervisor's answers, a moment after the wire)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if line_level(journal) != 0:
            return False
        time.sleep(0.05)
    return tripped() and line_level(journal) == 0


def reset(runtime: Runtime, token: str, journal: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line_level(journal) == 1:
            return True
        with contextlib.suppress(OSError):
            runtime.post("api/v1/estop/reset", token)
        time.sleep(0.05)
    return False


def tripped(runtime: Runtime) -> Callable[[], bool]:
    return lambda: bool(runtime.get("api/v1/status")["estop"]["latched"])


def held(journal: Path, level: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if line_level(journal) != level:
            return False
        time.sleep(0.05)
    return True


def down_within(journal: Path, since: float, seconds: float) -> bool:
    while time.monotonic() < since + seconds:
        if line_level(journal) == 0:
            return True
        time.sleep(0.02)
    return False


def control(route: str, body: dict[str, str]) -> None:
    """A fault through the bench world's fault API."""
    post_json(f"http://{CONTROL}/{route}", body)


def failed(runtime: Runtime, what: str) -> bool:
    """Say which step of a run failed, with the stop output's state then."""
    estop = runtime.get("api/v1/status")["estop"]
    print(
        f"bench perf: safety fault run failed: {what} ({estop['phase']}: {estop['reason']})",
        file=sys.stderr,
        flush=True,
    )
    return False


def outcome(attempt: Callable[[], bool]) -> bool:
    """A run that raised (a process gone, an answer that never came) counts as a failed run."""
    try:
        return attempt()
    except (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as exc:
        print(
            f"bench perf: safety fault run failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True
        )
        return False
