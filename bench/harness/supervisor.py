"""`appliance safety` on its own, as on a device: started once it says it is ready, the mock line's journal
given to it, and stopped."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.harness.children import JOURNAL_ENV, end


def start_supervisor(config: Path, data: Path, journal: Path) -> subprocess.Popen[str]:
    """`appliance safety` on its own, as on a device, once it says it is ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "safety", "--config", str(config), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, JOURNAL_ENV: str(journal)},
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "safety supervisor ready":
        proc.kill()
        raise RuntimeError("appliance safety did not start")
    return proc


def stop_supervisor(proc: subprocess.Popen[str]) -> None:
    end(proc)


@contextlib.contextmanager
def supervisor(config: Path, data: Path, journal: Path) -> Iterator[subprocess.Popen[str]]:
    proc = start_supervisor(config, data, journal)
    try:
        yield proc
    finally:
        stop_supervisor(proc)
