"""The `safety` section of `bench perf`, measured on real processes with the mock line's journal as the wire:

- trip_latency_p99_ms: `appliance run` with the whole bench world (QC on the conveyor camera, Modbus TCP
  and RTU polling, the serial sensor, the store) and its spawned supervisor; a critical event is produced
  in the runtime (a manual trip through the API: the runtime stamps the cause, then asks the supervisor)
  and timed to the line's recorded transition, then reset; p99 over the trips;
- trip_over_baseline_p99: that p99 over the p99 of a bare thread that drives the same mock line when an
  eventfd fires, measured in the same run under the same load;
- fault_drops_ok: an external supervisor (as on a device) and a runtime killed (SIGKILL) or frozen
  (SIGSTOP) at a random moment while the line is energized; the fraction of deaths after which the line
  dropped within heartbeat deadline + one supervisor tick of the signal;
- trip_latency_rule_p99_ms, trip_latency_qc_p99_ms: safety_trips.py;
- fault_trips_ok: faults of storage, input and time, safety_faults.py;
- supervisor_rss_mb, supervisor_start_s: safety_footprint.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness.runtime import Runtime, credential, start_runtime, stop_runtime, wait_for_qc
from bench.harness.supervisor import supervisor
from bench.harness.worlds import bench_world
from bench.perf import safety_faults, safety_footprint, safety_trips
from hal.gpio import GpioLineSettings
from hal.gpio.mock import MockChip, read_journal

HEARTBEAT_MS, DEADLINE_MS, TICK_MS = 100, 500, 10  # the defaults of [safety]
SAFETY = """
[safety]
supervisor = "{supervisor}"
trip_on_qc = false
stop_line = {{ gpio = "mock", line = "STOP" }}
"""


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _wait_level(journal: Path, level: int, after_ns: int, timeout: float = 5.0) -> int | None:
    """t_ns of the first transition to `level` after `after_ns`, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in read_journal(journal):
            if t.t_ns > after_ns and t.level == level:
                return t.t_ns
        time.sleep(0.002)
    return None


def _level(journal: Path) -> int:
    rows = read_journal(journal)
    return rows[-1].level if rows else 0


def _baseline(trips: int) -> list[float]:
    """A bare thread blocked on an eventfd drives the mock line (with its journal) when it fires."""
    with tempfile.TemporaryDirectory() as folder:
        chip = MockChip(Path(folder) / "journal")
        line = chip.output(GpioLineSettings("STOP"))
        fire, done = os.eventfd(0), os.eventfd(0)

        def worker() -> None:
            while os.eventfd_read(fire) < 1 << 40:
                line.set(False)
                os.eventfd_write(done, 1)

        threading.Thread(target=worker, daemon=True).start()
        latencies = []
        for _ in range(trips):
            line.set(True)
            time.sleep(random.uniform(0.001, 0.005))
            cause = time.monotonic_ns()
            os.eventfd_write(fire, 1)
            os.eventfd_read(done)
            latencies.append((chip.transitions[-1].t_ns - cause) / 1e6)
        os.eventfd_write(fire, 1 << 41)  # stop the worker
        line.close()
        chip.close()
        return latencies


def trip_latency(trips: int, folder: Path) -> dict[str, Any]:
    config = folder / "loaded.toml"
    config.write_text(bench_world(SAFETY.format(supervisor="spawn")))
    journal = folder / "loaded.journal"
    runtime = start_runtime(config, folder / "loaded-data", journal)
    try:
        token = credential(runtime)
        wait_for_qc(runtime)  # full load: QC is running
        baseline = _baseline(trips)
        for _ in range(trips):
            code, answer = runtime.post("api/v1/estop/trip", token, {"reason": "bench"})
            if code != 200:
                raise RuntimeError(f"trip refused: {code} {answer}")
            code, answer = runtime.post("api/v1/estop/reset", token)
            if code != 200:
                raise RuntimeError(f"reset refused: {code} {answer}")
            time.sleep(random.uniform(0.001, 0.01))
        status = runtime.get("api/v1/status")
        drops = sorted(t.t_ns for t in read_journal(journal) if t.level == 0)
        causes = _trip_causes(runtime, trips)
        ours = []
        for cause in causes:
            after = [t for t in drops if t >= cause]
            if after:
                ours.append((after[0] - cause) / 1e6)
        if len(ours) < trips:
            raise RuntimeError(f"only {len(ours)} of {trips} trips found on the line")
        p99, base99 = _p(ours, 0.99), _p(baseline, 0.99)
        return {
            "trip_latency_p99_ms": round(p99, 4),
            "trip_over_baseline_p99": round(p99 / base99, 3),
            "detail": {
                "trips": len(ours),
                "p50_ms": round(_p(ours, 0.5), 4),
                "max_ms": round(max(ours), 4),
                "baseline_p50_ms": round(_p(baseline, 0.5), 4),
                "baseline_p99_ms": round(base99, 4),
                "supervisor_scheduling": status["estop"]["supervisor"].get("scheduling"),
                "qc_fps": round(status["qc"]["fps"], 1),
                "loop_lag_ms": status["runtime"]["loop_lag_ms"],
            },
        }
    finally:
        stop_runtime(runtime)


def _trip_causes(runtime: Runtime, trips: int) -> list[int]:
    """cause_ns of every recorded trip, read back through the events API."""
    deadline = time.monotonic() + 10
    causes: list[int] = []
    while time.monotonic() < deadline:
        since, causes = 0, []
        while page := runtime.get(f"api/v1/events?since={since}"):
            since = page[-1]["id"]
            causes += [e["data"]["cause_ns"] for e in page if e["kind"] == "estop.trip"]
        if len(causes) >= trips:
            break
        time.sleep(0.2)
    return sorted(causes)


def fault_drops(deaths: int, folder: Path) -> dict[str, Any]:
    config = folder / "faults.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n' + SAFETY.format(supervisor="external"))
    data, journal = folder / "faults-data", folder / "faults.journal"
    bound_ms = DEADLINE_MS + TICK_MS
    results: dict[str, list[float]] = {"SIGKILL": [], "SIGSTOP": []}
    token = ""
    with supervisor(config, data, journal):
        runtime = start_runtime(config, data, journal)
        token = credential(runtime)
        kinds = ["SIGSTOP"] * deaths + ["SIGKILL"] * deaths
        random.shuffle(kinds)
        for kind in kinds:
            if runtime.proc.poll() is not None:
                runtime = start_runtime(config, data, journal)
            _reset_until_energized(runtime, token, journal)
            time.sleep(random.uniform(0, 2 * HEARTBEAT_MS / 1000))  # any moment between heartbeats
            sig = signal.SIGKILL if kind == "SIGKILL" else signal.SIGSTOP
            hit = time.monotonic_ns()
            os.kill(runtime.proc.pid, sig)
            drop = _wait_level(journal, 0, hit - 1, timeout=5 * DEADLINE_MS / 1000)
            results[kind].append(float("inf") if drop is None else max(0, drop - hit) / 1e6)
            if kind == "SIGKILL":
                runtime.proc.wait()
            else:
                os.kill(runtime.proc.pid, signal.SIGCONT)
        stop_runtime(runtime)
    every = results["SIGKILL"] + results["SIGSTOP"]
    ok = sum(1 for ms in every if ms <= bound_ms)
    return {
        "fault_drops_ok": round(ok / len(every), 3),
        "detail": {
            "deaths": {k: len(v) for k, v in results.items()},
            "bound_ms": bound_ms,
            "sigkill_max_ms": round(max(results["SIGKILL"]), 3),
            "sigstop_p50_ms": round(_p(results["SIGSTOP"], 0.5), 3),
            "sigstop_max_ms": round(max(results["SIGSTOP"]), 3),
        },
    }


def _reset_until_energized(runtime: Runtime, token: str, journal: Path) -> None:
    deadline = time.monotonic() + 10
    while _level(journal) != 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the line did not come back: {runtime.lines[-3:]}")
        with contextlib.suppress(OSError):
            runtime.post("api/v1/estop/reset", token)
        time.sleep(0.02)


def run(quick: bool) -> dict[str, Any]:
    trips, deaths = (100, 10) if quick else (1000, 200)
    cause_trips, budget_s, fault_runs, starts = (100, 120.0, 1, 5) if quick else (500, 600.0, 5, 20)
    with tempfile.TemporaryDirectory(prefix="bench-safety-") as folder:
        latency = trip_latency(trips, Path(folder))
        faults = fault_drops(deaths, Path(folder))
        causes = safety_trips.run(cause_trips, Path(folder), budget_s)
        injected = safety_faults.run(fault_runs, Path(folder))
        footprint = safety_footprint.run(starts, Path(folder))
    d = latency["detail"]
    figures = {
        "trip_latency_p99_ms": {"measured": latency["trip_latency_p99_ms"], "baseline": "-", "unit": "ms"},
        "trip_over_baseline_p99": {
            "measured": latency["trip_latency_p99_ms"],
            "baseline": d["baseline_p99_ms"],
            "unit": "ms p99",
        },
        "fault_drops_ok": {
            "measured": sum(faults["detail"]["deaths"].values()),
            "baseline": f"<= {faults['detail']['bound_ms']} ms",
            "unit": "deaths",
        },
        "trip_latency_rule_p99_ms": {
            "measured": causes["trip_latency_rule_p99_ms"],
            "baseline": "-",
            "unit": "ms",
        },
        "trip_latency_qc_p99_ms": {
            "measured": causes["trip_latency_qc_p99_ms"],
            "baseline": "-",
            "unit": "ms",
        },
        "fault_trips_ok": {
            "measured": sum(int(r.split("/")[1]) for r in injected["detail"]["runs"].values()),
            "baseline": "held down until reset",
            "unit": "runs",
        },
        "supervisor_rss_mb": {"measured": footprint["supervisor_rss_mb"], "baseline": "-", "unit": "MB"},
        "supervisor_start_s": {
            "measured": footprint["supervisor_start_s"],
            "baseline": footprint["detail"]["bare_python_start_s"],
            "unit": "s (bare python)",
        },
    }
    return {
        "trip_latency_p99_ms": latency["trip_latency_p99_ms"],
        "trip_over_baseline_p99": latency["trip_over_baseline_p99"],
        "fault_drops_ok": faults["fault_drops_ok"],
        "trip_latency_rule_p99_ms": causes["trip_latency_rule_p99_ms"],
        "trip_latency_qc_p99_ms": causes["trip_latency_qc_p99_ms"],
        "fault_trips_ok": injected["fault_trips_ok"],
        "supervisor_rss_mb": footprint["supervisor_rss_mb"],
        "supervisor_start_s": footprint["supervisor_start_s"],
        "figures": figures,
        "detail": {
            "latency": d,
            "faults": faults["detail"],
            "cause_trips": causes["detail"],
            "injected_faults": injected["detail"],
            "supervisor": footprint["detail"],
        },
    }
