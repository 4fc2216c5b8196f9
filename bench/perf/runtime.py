"""The `runtime` section of `bench perf`: the runtime's footprint, its bounded stops and starts, and what it
writes to its storage, on the whole bench world of examples/bench.toml.

- rss_mb, startup_s, first_decision_s: runtime_footprint.py;
- stop_s_max, stop_s_p99: from SIGTERM to the exit, over 500 stops (10 with `--quick`) at the stop
  harness's moments (stops.py: while starting, running, just after a commit, during a camera reconnect,
  with the broker down), under two busy loops on every core;
- start_s_p99: from the spawn to the first status answer, over the runs that got that far, under that load;
- records_lost_on_stop: readings the runtime said it committed that the next start could not find;
- flash_bytes_per_reading, flash_evidence_bytes_per_reading: flash.py.

The stop runs need pgrep (needs.PGREP), the flash window mosquitto (needs.MOSQUITTO: sync must run); without
them those figures are left out and the others measured.
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness.load import cpu_load
from bench.perf import runtime_footprint
from bench.perf.flash import flash_window
from bench.perf.needs import MOSQUITTO, PGREP
from bench.perf.stops import StopRun, stop_runs

RUNS, QUICK_RUNS = 500, 10  # --quick: each moment twice
RUN_S = 8.0  # the load outlasts this many seconds a run at most
FLASH_S, QUICK_FLASH_S = 90.0, 30.0  # the flash window, at least; it ends at the store's next flush


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _progress(i: int, run: StopRun) -> None:
    if (i + 1) % 25 == 0 or not run.clean or run.overran:
        note = f" code {run.code}, overran {run.overran}, lost {run.lost}" if run.code or run.overran else ""
        print(
            f"bench perf: runtime: stop {i + 1}: {run.moment} {run.stop_s:.2f} s{note}",
            file=sys.stderr,
            flush=True,
        )


def run(quick: bool) -> dict[str, Any]:
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        result = runtime_footprint.run(quick, Path(folder), broker=MOSQUITTO.present())
    figures, detail = result["figures"], {"footprint": result.pop("detail")}
    if MOSQUITTO.present():
        with tempfile.TemporaryDirectory() as folder:
            flash = flash_window(QUICK_FLASH_S if quick else FLASH_S, Path(folder))
        result["flash_bytes_per_reading"] = flash["bytes_per_reading"]
        result["flash_evidence_bytes_per_reading"] = flash["evidence_bytes_per_reading"]
        figures["flash_bytes_per_reading"] = {
            "measured": flash["readings"],
            "baseline": "process writes",
            "unit": "bytes/reading",
        }
        figures["flash_evidence_bytes_per_reading"] = {
            "measured": flash["evidence_files"],
            "baseline": "evidence files",
            "unit": "bytes/reading",
        }
        detail["flash"] = flash
    if PGREP.present():
        stops = _stops(QUICK_RUNS if quick else RUNS)
        figures |= stops.pop("figures")
        detail |= stops.pop("detail")
        result |= stops
    detail["seconds"] = round(time.monotonic() - began, 1)
    return result | {"figures": figures, "detail": detail}


def _stops(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder, cpu_load(count * RUN_S) as loops:
        runs = stop_runs(count, Path(folder), progress=_progress)
        failed = {f"run{i}": r.as_dict() for i, r in enumerate(runs) if not r.clean}
    stops = [r.stop_s for r in runs]
    starts = [r.start_s for r in runs if r.start_s is not None]
    by_moment: dict[str, list[float]] = collections.defaultdict(list)
    for r in runs:
        by_moment[r.moment].append(r.stop_s)
    return {
        "stop_s_max": round(max(stops), 3),
        "stop_s_p99": round(_p(stops, 0.99), 3),
        "start_s_p99": round(_p(starts, 0.99), 3),
        "records_lost_on_stop": sum(r.lost for r in runs),
        "figures": {
            "stop_s_max": {"measured": len(stops), "baseline": "budget 2.0 s", "unit": "stops"},
            "stop_s_p99": {"measured": len(stops), "baseline": "-", "unit": "s"},
            "start_s_p99": {"measured": len(starts), "baseline": "first status answer", "unit": "s"},
            "records_lost_on_stop": {
                "measured": sum(r.committed for r in runs),
                "baseline": "committed",
                "unit": "readings",
            },
        },
        "detail": {
            "stops": len(stops),
            "busy_loops": loops,
            "stop_s_p50": round(_p(stops, 0.5), 3),
            "start_s_p50": round(_p(starts, 0.5), 3),
            "start_s_max": round(max(starts, default=0.0), 3),
            "stop_s_max_by_moment": {m: round(max(v), 3) for m, v in sorted(by_moment.items())},
            "stops_by_moment": {m: len(v) for m, v in sorted(by_moment.items())},
            "exits_not_zero": sum(r.code != 0 and not r.early for r in runs),
            "ended_before_python_took_the_signal": sum(r.early for r in runs),
            "services_overran": dict(collections.Counter(s for r in runs for s in r.overran)),
            "leftover_processes": sum(r.leftover for r in runs),
            "failed_runs": failed,
        },
    }
