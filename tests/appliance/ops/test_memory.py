"""The fixed mmap threshold: a process that frees big blocks on several threads gets smaller again."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECKS = """
import hashlib, sys, threading
from appliance.ops.memory import return_big_blocks

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "fixed":
    assert return_big_blocks()
check = lambda: hashlib.scrypt(b"guess", salt=b"s" * 16, n=1 << 14, r=8, p=1, maxmem=64 << 20, dklen=32)
before = rss_mb()
for _ in range(4):  # two at once, each on a thread of its own, as the web's password checks run
    pair = [threading.Thread(target=check) for _ in range(2)]
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join()
print(rss_mb() - before)
"""


def grown_mb(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", CHECKS, mode], capture_output=True, text=True, check=True)
    return float(done.stdout)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_big_blocks_freed_on_threads_go_back_to_the_system() -> None:
    assert grown_mb("default") > 16  # glibc's own rising threshold keeps them: what the fix is for
    assert grown_mb("fixed") < 4
