"""Stepping a process's wall clock from outside, as NTP steps a box without a real-time clock: Debian's
libfaketime preloaded, reading its offset from a file that the bench rewrites.

Only CLOCK_REALTIME moves (FAKETIME_DONT_FAKE_MONOTONIC); the file is read again at most once a second
(FAKETIME_CACHE_DURATION), so a step shows within a second in every process that inherits the environment.
Python's time.sleep is mended in those processes by faketime_site/sitecustomize.py (see there).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

# the folder is the architecture's: x86_64-linux-gnu, aarch64-linux-gnu, ...
PATTERNS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")


def library() -> str | None:
    """libfaketime's path, or None when the Debian package `faketime` is not installed."""
    found = [path for pattern in PATTERNS for path in sorted(glob.glob(pattern))]
    return found[0] if found else None


def environment(offset_file: Path) -> dict[str, str]:
    """What a process needs in its environment to follow `offset_file`."""
    lib = library()
    if lib is None:
        raise RuntimeError("libfaketime is not installed (Debian package faketime)")
    site = str(Path(__file__).with_name("faketime_site"))
    return {
        "LD_PRELOAD": lib,
        "PYTHONPATH": os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def step(offset_file: Path, seconds: float) -> None:
    """Put the wall clock `seconds` away from the real one (0: back to it)."""
    offset_file.write_text(f"{seconds:+.0f}\n")
