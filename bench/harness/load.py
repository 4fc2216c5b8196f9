"""CPU load beside the children under test: busy loops in processes of their own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def cpu_load(seconds: float, loops: int | None = None) -> Iterator[int]:
    """Busy loops (two per core by default), each ending by itself after `seconds` or with the block."""
    count = loops or 2 * (os.cpu_count() or 1)
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]
    try:
        yield count
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
