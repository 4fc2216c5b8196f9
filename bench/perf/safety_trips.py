"""Rule- and QC-originated trips under the full bench world: from the sample or frame that makes a critical
rule or defect fire, as it enters the runtime, to the stop line's recorded transition.

`appliance run` serves examples/bench.toml (QC on the conveyor camera, Modbus TCP and RTU polling, the serial
sensor, the store, sync to the bench's broker) with two additions that make trips come often: a Modbus TCP
slave whose level is a square wave crossing a critical threshold rule every 0.3 s (polled every 20 ms), and
the camera showing a cracked part (critical) on half of its parts at 30 frames a second. The bench resets
the line whenever it is down and a reset is accepted. Each `estop.trip` event carries the cause's
CLOCK_MONOTONIC stamp (the poll answer or the frame received); the matching drop is the first one in the mock
line's journal after it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from bench.harness.runtime import Runtime, credential, start_runtime, stop_runtime, wait_for_qc
from bench.harness.worlds import bench_world
from hal.gpio.mock import read_journal

RULE = "trip bench"
WORLD = """
[devices.trip-bench]
type = "modbus_tcp"
host = "127.0.0.1"
port = 15021
poll_interval_s = 0.02
timeout_s = 0.5

[[devices.trip-bench.registers]]
channel = "level"
table = "input"
address = 0
datatype = "int16"

[[bench.modbus_tcp]]
name = "trip-bench"
port = 15021

[[bench.modbus_tcp.registers]]
table = "input"
address = 0
datatype = "int16"
signal = { type = "square", period_s = 0.3, duty = 0.3, low = 0.0, high = 100.0 }
"""
SAFETY = f"""
[safety]
trip_on_qc = true
stop_line = {{ gpio = "mock", line = "STOP" }}

[[safety.rules]]
type = "threshold"
name = "{RULE}"
sensor = "trip-bench.level"
above = 50.0
"""


def trips_config(folder: Path) -> Path:
    text = bench_world(WORLD + SAFETY)
    camera = re.search(r"\[\[bench\.cameras\]\].*?(?=\n\n|\Z)", text, flags=re.S)
    assert camera is not None, "examples/bench.toml has no camera"
    busy = re.sub(r"fps = \d+", "fps = 30", camera.group(0))
    busy = re.sub(
        r"defect_rate = [\d.]+", "defect_rate = 0.5\nframes_per_part = 4\nweights = { crack = 1.0 }", busy
    )
    text = text.replace(camera.group(0), busy)
    config = folder / "trips.toml"
    config.write_text(text)
    return config


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _kind(event: dict[str, Any]) -> str | None:
    data = event["data"]
    if event["kind"] != "estop.trip" or data.get("source") != "request":
        return None
    reason = str(data.get("reason", ""))
    return "qc" if reason.startswith("QC:") else "rule" if reason.startswith(f"{RULE}:") else None


def _collect(
    runtime: Runtime, token: str, journal: Path, trips: int, budget_s: float
) -> list[dict[str, Any]]:
    """Reset whenever the line is down, until `trips` of each kind are recorded or the budget is spent."""
    events: list[dict[str, Any]] = []
    since, deadline, next_read = 0, time.monotonic() + budget_s, 0.0
    while time.monotonic() < deadline:
        rows = read_journal(journal)
        if rows and rows[-1].level == 0:
            runtime.post("api/v1/estop/reset", token)  # refused (409) while the rule's cause persists
        if time.monotonic() >= next_read:
            while page := runtime.get(f"api/v1/events?since={since}"):
                since = page[-1]["id"]
                events += [e for e in page if _kind(e)]
            counts = [sum(1 for e in events if _kind(e) == k) for k in ("rule", "qc")]
            if min(counts) >= trips:
                break
            next_read = time.monotonic() + 1.0
        time.sleep(0.005)
    return events


def run(trips: int, folder: Path, budget_s: float) -> dict[str, Any]:
    journal = folder / "trips.journal"
    runtime = start_runtime(trips_config(folder), folder / "trips-data", journal)
    try:
        token = credential(runtime)
        wait_for_qc(runtime)  # full load: QC is running
        events = _collect(runtime, token, journal, trips, budget_s)
        status = runtime.get("api/v1/status")
    finally:
        stop_runtime(runtime)
    drops = sorted(t.t_ns for t in read_journal(journal) if t.level == 0)
    latencies: dict[str, list[float]] = {"rule": [], "qc": []}
    for event in events:
        cause = int(event["data"]["cause_ns"])
        after = [t for t in drops if t >= cause][:1]
        if after:
            latencies[str(_kind(event))].append((after[0] - cause) / 1e6)
    for kind, values in latencies.items():
        if len(values) < min(trips, 1):
            raise RuntimeError(f"no {kind} trips found on the line")
    return {
        "trip_latency_rule_p99_ms": round(_p(latencies["rule"], 0.99), 4),
        "trip_latency_qc_p99_ms": round(_p(latencies["qc"], 0.99), 4),
        "detail": {
            **{
                f"{kind}_{name}": value
                for kind, values in latencies.items()
                for name, value in (
                    ("trips", len(values)),
                    ("p50_ms", round(_p(values, 0.5), 4)),
                    ("max_ms", round(max(values), 4)),
                )
            },
            "qc_fps": round(status["qc"]["fps"], 1),
            "qc_latency_ms": status["qc"].get("latency_ms"),
            "loop_lag_ms": status["runtime"]["loop_lag_ms"],
            "supervisor_scheduling": status["estop"]["supervisor"].get("scheduling"),
        },
    }
