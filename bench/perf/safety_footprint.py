"""The supervisor's size: its resident memory while it serves a heartbeating runtime, and its start time.

supervisor_start_s: from the exec of `appliance safety` to its ready line (socket bound, line opened),
the median of several starts; a bare `python -c pass` start is timed beside it for reference.
supervisor_rss_mb: VmRSS of the supervisor after it has served heartbeats and a trip and reset.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from appliance.safety import protocol
from appliance.safety.protocol import Kind
from bench.harness.supervisor import start_supervisor, stop_supervisor

CONFIG = '[safety]\nstop_line = { gpio = "mock", line = "STOP" }\n'


def _start(config: Path, data: Path, journal: Path) -> tuple[subprocess.Popen[str], float]:
    began = time.perf_counter()
    proc = start_supervisor(config, data, journal)
    return proc, time.perf_counter() - began


def _rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _serve(data: Path, beats: int) -> None:
    """What the runtime does: heartbeats, a trip and a reset."""
    secret = (data / "safety.key").read_bytes()
    sender = protocol.Sender(secret, "bench")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.settimeout(5)
        sock.connect(str(data / "safety.sock"))
        for i in range(beats):
            sock.send(sender.message(Kind.HEARTBEAT, data={"causes": []}))
            sock.recv(protocol.MAX_REPLY)
            if i == beats // 2:
                sock.send(sender.message(Kind.TRIP, "bench"))
                sock.recv(protocol.MAX_REPLY)
                sock.send(sender.message(Kind.RESET, "bench"))
                sock.recv(protocol.MAX_REPLY)
            time.sleep(0.01)


def run(starts: int, folder: Path) -> dict[str, Any]:
    config = folder / "footprint.toml"
    config.write_text(CONFIG)
    times, bare = [], []
    for i in range(starts):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - began)
        proc, took = _start(config, folder / f"footprint-{i}", folder / "footprint.journal")
        times.append(took)
        if i < starts - 1:
            stop_supervisor(proc)
    _serve(folder / f"footprint-{starts - 1}", 200)
    rss, peak = _rss_mb(proc.pid)
    stop_supervisor(proc)
    return {
        "supervisor_rss_mb": round(rss, 1),
        "supervisor_start_s": round(statistics.median(times), 3),
        "detail": {
            "starts": starts,
            "start_max_s": round(max(times), 3),
            "bare_python_start_s": round(statistics.median(bare), 3),
            "rss_peak_mb": round(peak, 1),
        },
    }
