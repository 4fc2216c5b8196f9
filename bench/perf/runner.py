"""Runs the benchmark sections, prints a table and writes the JSON of CONTRACT.md."""

from __future__ import annotations

import json
import platform
import socket
import time
from pathlib import Path
from typing import Any

from bench.perf import modbus

GOALS = {  # ratio key: (comparison, goal) from MISSION.md
    "tcp_regs_over_bare": (">=", 0.90),
    "requests_over_optimal": ("<=", 1.00),
    "rtu_cycle_over_floor": ("<=", 1.05),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(quick: bool) -> dict[str, Any]:
    began = time.time()
    result: dict[str, Any] = {
        "meta": {
            "quick": quick,
            "started": began,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
        },
        "modbus": modbus.run(quick, _free_port()),
    }
    result["meta"]["seconds"] = round(time.time() - began, 1)
    return result


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


def main(quick: bool, json_path: Path | None) -> int:
    result = run(quick)
    print(table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
