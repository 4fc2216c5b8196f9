"""What the harness's children share: the mock stop line's journal named in their environment, and the
way a child that prints to a pipe is ended."""

from __future__ import annotations

import subprocess

# The variable hal/gpio/mock.py reads (its JOURNAL_ENV) for the file where a mock line records its
# transitions. Named here because the bench may not import hal; tests/bench/test_harness.py checks that
# the two agree.
JOURNAL_ENV = "APPLIANCE_GPIO_MOCK_JOURNAL"


def end(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """SIGTERM, wait for the exit, close the pipe it printed to."""
    proc.terminate()
    proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()
