"""The runtime's footprint, for the `runtime` section of `bench perf`: `appliance run` with the demo model on
the whole bench world of examples/bench.toml (with the world's broker when mosquitto is installed), no
load, started several times on one data directory (the first start on an empty one), its status polled
every 20 ms:

- startup_s: from the spawn to the first status answer;
- first_decision_s: from the spawn to the first status whose QC counts an inspected frame (each gets a
  decision, a defect or none);
- rss_mb: resident memory (VmRSS) of the `appliance run` process once it has run a while after its first
  decision; its children (the bench world, the supervisor) are processes of their own, shown apart.

Each figure is the median over the starts; the lowest and highest are beside it.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.harness.watched import QuietRun

STARTS, QUICK_STARTS = 5, 3
SETTLE_S, QUICK_SETTLE_S = 30.0, 5.0  # after the first decision: the feature windows, caches, sync
DECISION_WAIT_S = 60.0
GOALS = {"rss_mb": "MB", "startup_s": "s", "first_decision_s": "s"}


def _status_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (its highest so far) in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def _children_mb(pid: int) -> dict[str, float]:
    """VmRSS of each child of `pid`, named by what it runs and its pid: "bench sim (1234)"."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            args = (stat.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
            at = args.index("-m") + 1 if "-m" in args else 0  # python [-P] -m bench sim ...
            name = " ".join(args[at : at + 2]) if at else Path(args[0]).name
            found[f"{name} ({stat.parent.name})"] = _status_mb(int(stat.parent.name))["VmRSS"]
        except (OSError, IndexError, KeyError, ValueError):
            continue  # ended meanwhile
    return found


def one(folder: Path, broker: bool, settle_s: float) -> dict[str, Any]:
    """One start: its times, and its memory `settle_s` after the first decision."""
    run = QuietRun(folder, broker)
    try:
        if not run.wait_until(lambda s: bool((s.get("qc") or {}).get("frames")), timeout=DECISION_WAIT_S):
            raise RuntimeError(f"no QC decision within {DECISION_WAIT_S:g} s: " + "".join(run.tail))
        decided = time.monotonic() - run.began
        time.sleep(settle_s)
        memory = _status_mb(run.proc.pid)
        children = _children_mb(run.proc.pid)
    finally:
        run.stop()
    assert run.start_s is not None  # a status answered before the decision was seen
    return {
        "startup_s": round(run.start_s, 3),
        "first_decision_s": round(decided, 3),
        "rss_mb": memory["VmRSS"],
        "rss_peak_mb": memory["VmHWM"],
        "children_rss_mb": children,
    }


def run(quick: bool, folder: Path, broker: bool) -> dict[str, Any]:
    starts = [
        one(folder, broker, QUICK_SETTLE_S if quick else SETTLE_S)
        for _ in range(QUICK_STARTS if quick else STARTS)
    ]
    result: dict[str, Any] = {}
    figures = {}
    for key, unit in GOALS.items():
        values = [s[key] for s in starts]
        result[key] = round(statistics.median(values), 3)
        figures[key] = {
            "measured": result[key],
            "baseline": f"median of {len(values)} starts",
            "unit": unit,
            "min": min(values),
            "max": max(values),
        }
    figures["rss_mb"]["after_s"] = QUICK_SETTLE_S if quick else SETTLE_S
    return result | {"figures": figures, "detail": {"broker": broker, "starts": starts}}
