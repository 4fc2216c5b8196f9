"""Runs the benchmark sections, prints a table and writes the JSON of docs/bench.md.

Each section declares its goals and what it needs from the machine (needs.py). Before anything runs, the
needs of every chosen section are checked: a section that lacks one is written as {"skipped": reason},
a part of a section that lacks one is left out and said so; a section that fails is written as
{"error": ...} with its traceback printed, and the others still run. The JSON is rewritten after each
section, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness.ports import free_port
from bench.models.mobilenet_builder import mobilenet_v2_like
from bench.models.tflite_builder import write
from bench.perf import modbus, runtime, safety, security, store, sync
from bench.perf.needs import FAKETIME, IPROUTE2, LITERT, MOSQUITTO, PGREP, ROOT, Part, Section, first_missing
from bench.perf.table import table

MODELS = Path(__file__).resolve().parents[1] / "models"
DEMO_LABELS = ["ok", "scratch", "missing_hole", "crack", "stain", "misplaced"]
TICK_S = 30.0  # a progress line this often while a section runs


def _qc(quick: bool) -> dict[str, Any]:
    """The demo model (float and int8) and a MobileNetV2-sized model built here (float and int8)."""
    from bench.perf import qc  # imports LiteRT: only once its need was checked

    with tempfile.TemporaryDirectory() as folder:
        mobilenet = {}
        for dtype in ("float32", "int8"):
            path = write(Path(folder) / f"mobilenet_v2_{dtype}.tflite", mobilenet_v2_like(224, dtype=dtype))
            mobilenet[f"mobilenet_v2_{dtype}"] = (path, [f"c{i}" for i in range(1000)], "rgb", (-1.0, 1.0))
        models = {
            "demo_float": (MODELS / "qc_demo_float.tflite", DEMO_LABELS, "rgb", (0.0, 255.0)),
            "demo_int8": (MODELS / "qc_demo_int8.tflite", DEMO_LABELS, "rgb", (0.0, 255.0)),
            **mobilenet,
        }
        return qc.run(quick, models)


STOPS = ("stop_s_max", "stop_s_p99", "start_s_p99", "records_lost_on_stop")
SECTIONS: dict[str, Section] = {
    "qc": Section(_qc, {"pipeline_over_raw_p50": ("<=", 1.05), "fps_over_raw": (">=", 1.0)}, (LITERT,)),
    "modbus": Section(
        lambda quick: modbus.run(quick, free_port()),
        {
            "tcp_regs_over_bare": (">=", 0.95),
            "requests_over_optimal": ("<=", 1.00),
            "rtu_cycle_over_floor": ("<=", 1.05),
        },
    ),
    "safety": Section(
        safety.run,
        {
            "trip_latency_p99_ms": ("<=", 0.5),
            "trip_over_baseline_p99": ("<=", 2.0),
            "fault_drops_ok": (">=", 1.0),
            "trip_latency_rule_p99_ms": ("<=", 2.0),
            "trip_latency_qc_p99_ms": ("<=", 2.0),
            "fault_trips_ok": (">=", 1.0),
            "supervisor_rss_mb": ("<=", 25.0),
            "supervisor_start_s": ("<=", 0.3),
        },
        parts=(
            Part("fault_trips_ok: the storage runs", (ROOT,)),
            Part("fault_trips_ok: the clock runs", (FAKETIME,)),
        ),
    ),
    "store": Section(store.run, {"ingest_over_raw": (">=", 0.85)}),
    "sync": Section(
        sync.run,
        {"bytes_over_gzip_json": ("<=", 0.20), "delivered_unique_over_produced": (">=", 1.0)},
        (MOSQUITTO,),
        (Part("delivered_unique_over_produced: the flapping link", (ROOT, IPROUTE2), quick=False),),
    ),
    "runtime": Section(
        runtime.run,
        {
            "rss_mb": ("<=", 150.0),
            "startup_s": ("<=", 2.0),
            "first_decision_s": ("<=", 3.0),
            "flash_bytes_per_reading": ("<=", 64.0),
            "stop_s_max": ("<=", 2.0),
            "stop_s_p99": ("<=", 1.0),
            "start_s_p99": ("<=", 2.0),
            "records_lost_on_stop": ("<=", 0),
        },
        parts=(
            Part(
                "the flash window",
                (MOSQUITTO,),
                ("flash_bytes_per_reading", "flash_evidence_bytes_per_reading"),
            ),
            Part("the stop runs", (PGREP,), STOPS),
        ),
    ),
    "security": Section(
        security.run,
        {
            "login_attempts_per_min_max": ("<=", 10),
            "rss_growth_mb_under_abuse": ("<=", 20.0),
            "healthy_poll_rate_with_babbler": (">=", 0.90),
        },
    ),
}
GOALS = {key: goal for section in SECTIONS.values() for key, goal in section.goals.items()}


def plan(quick: bool, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per section: why it is skipped ({"skipped": reason}), or the parts it leaves out ({part: reason})."""
    found: dict[str, dict[str, str]] = {}
    for name in names:
        section = SECTIONS[name]
        if (need := first_missing(section.needs)) is not None:
            found[name] = {"skipped": need.reason}
            continue
        found[name] = {
            part.name: need.reason
            for part in section.parts
            if (not quick or part.quick) and (need := first_missing(part.needs)) is not None
        }
    return found


def say(line: str) -> None:
    print(f"bench perf: {line}", file=sys.stderr, flush=True)


@contextmanager
def ticking(name: str, began: float) -> Iterator[None]:
    """A progress line every TICK_S seconds while the block runs."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK_S):
            say(f"{name}: running, {time.monotonic() - began:.0f} s")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def measure(name: str, quick: bool, left_out: dict[str, str]) -> dict[str, Any]:
    """One section's result; an exception in it is its result, printed with its traceback."""
    began = time.monotonic()
    say(f"{name}: started" + (f" without {', '.join(left_out)}" if left_out else ""))
    try:
        with ticking(name, began):
            result = SECTIONS[name].measure(quick)
    except Exception as exc:  # one section's failure must not lose the others
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    took = time.monotonic() - began
    say(f"{name}: {'failed' if 'error' in result else 'done'} in {took:.1f} s")
    if left_out:
        result["partly_skipped"] = left_out
    result.setdefault("seconds", round(took, 1))
    return result


def run(
    quick: bool, only: Sequence[str] = (), written: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Every section, or the ones in `only`, in the order of SECTIONS; `written` gets the result so far
    after each section."""
    began = time.time()
    names = [name for name in SECTIONS if not only or name in only]
    result: dict[str, Any] = {
        "meta": {
            "quick": quick,
            "started": began,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            **({"only": list(only)} if only else {}),
        }
    }
    planned = plan(quick, names)
    for name in names:  # said at once: a missing program is known before an hour of measuring
        for part, reason in planned[name].items():
            say(f"{name}: skipped: {reason}" if part == "skipped" else f"{name}: leaves out {part}: {reason}")
    for name in names:
        result[name] = (
            dict(planned[name]) if "skipped" in planned[name] else measure(name, quick, planned[name])
        )
        result["meta"]["seconds"] = round(time.time() - began, 1)
        if written is not None:
            written(result)
    return result


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Whole or not at all: a reader never sees half a file."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(part, path)


def main(quick: bool, json_path: Path | None, only: Sequence[str] = ()) -> int:
    """0 when every section ran or was skipped for a missing need; 1 when one failed."""
    result = run(quick, only, None if json_path is None else lambda r: write_json(json_path, r))
    print(table(result, SECTIONS))
    if json_path is not None:
        print(f"wrote {json_path}")
    failed = [name for name, section in result.items() if name != "meta" and "error" in section]
    if failed:
        say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0
