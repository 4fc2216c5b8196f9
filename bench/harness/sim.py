"""`bench sim` as a child process, so the simulated devices do not share the CPU of the process measured or
tested beside them."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness.children import end


@contextlib.contextmanager
def sim_world(config_text: str) -> Iterator[Path]:
    """Run `bench sim` on a config until the block ends; yields the config's folder (`{dir}` in the text)."""
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as folder:
        config = Path(folder) / "world.toml"
        config.write_text(config_text.replace("{dir}", folder))
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "sim", "--config", str(config), "--log-level", "warning"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 30
            for line in proc.stdout:
                if line.strip() == "bench sim ready" or time.monotonic() > deadline:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"bench sim exited with {proc.returncode}")
            yield Path(folder)
        finally:
            end(proc)
