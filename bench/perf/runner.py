"""Runs the benchmark sections, prints a table and writes the JSON of docs/bench.md."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.harness.ports import free_port
from bench.models.mobilenet_builder import mobilenet_v2_like
from bench.models.tflite_builder import write
from bench.perf import modbus, qc, runtime, safety, security, store, sync

MODELS = Path(__file__).resolve().parents[1] / "models"
DEMO_LABELS = ["ok", "scratch", "missing_hole", "crack", "stain", "misplaced"]

GOALS = {  # ratio key: (comparison, goal) the product's goals (docs/bench.md)
    "pipeline_over_raw_p50": ("<=", 1.10),
    "fps_over_raw": (">=", 0.95),
    "tcp_regs_over_bare": (">=", 0.90),
    "requests_over_optimal": ("<=", 1.00),
    "rtu_cycle_over_floor": ("<=", 1.05),
    "trip_latency_p99_ms": ("<=", 1.0),
    "fault_drops_ok": (">=", 1.0),
    "trip_latency_rule_p99_ms": ("<=", 2.0),
    "trip_latency_qc_p99_ms": ("<=", 2.0),
    "fault_trips_ok": (">=", 1.0),
    "supervisor_rss_mb": ("<=", 25.0),
    "supervisor_start_s": ("<=", 0.3),
    "ingest_over_raw": (">=", 0.85),
    "bytes_over_gzip_json": ("<=", 0.30),
    "delivered_unique_over_produced": (">=", 1.0),
    "stop_s_max": ("<=", 2.0),
    "stop_s_p99": ("<=", 1.0),
    "start_s_p99": ("<=", 2.0),
    "records_lost_on_stop": ("<=", 0),
    "flash_bytes_per_reading": ("<=", 64.0),
    "login_attempts_per_min_max": ("<=", 10),
    "rss_growth_mb_under_abuse": ("<=", 20.0),
    "healthy_poll_rate_with_babbler": (">=", 0.90),
}


SECTIONS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "qc": lambda quick: _qc(quick),
    "modbus": lambda quick: modbus.run(quick, free_port()),
    "safety": safety.run,
    "store": store.run,
    "sync": sync.run,
    "runtime": runtime.run,
    "security": security.run,
}


def run(quick: bool, only: Sequence[str] = ()) -> dict[str, Any]:
    """Every section, or the ones in `only`, in the order of SECTIONS."""
    began = time.time()
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
    for name, measure in SECTIONS.items():
        if not only or name in only:
            result[name] = measure(quick)
    result["meta"]["seconds"] = round(time.time() - began, 1)
    return result


def _qc(quick: bool) -> dict[str, Any]:
    """The demo model (float and int8) and a MobileNetV2-sized model built here (float and int8)."""
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


def table(result: dict[str, Any]) -> str:
    rows = [("section", "ratio", "value", "goal", "measured", "baseline", "unit")]
    for section, figures in result.items():
        if section == "meta":
            continue
        for key, detail in figures.get("figures", {}).items():
            comparison, goal = GOALS.get(key, ("", None))
            value = figures[key]
            met = (
                ""
                if goal is None
                else ("ok" if (value >= goal if comparison == ">=" else value <= goal) else "MISS")
            )
            rows.append(
                (
                    section,
                    key,
                    f"{value:.3f}",
                    f"{comparison} {goal} {met}".strip(),
                    str(detail["measured"]),
                    str(detail["baseline"]),
                    detail["unit"],
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(quick: bool, json_path: Path | None, only: Sequence[str] = ()) -> int:
    result = run(quick, only)
    print(table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
