"""`bench perf --quick` runs end to end and writes the JSON of docs/bench.md (figures are not judged here:
speed is measured by `bench perf`, not by timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_quick_perf_writes_every_ratio_with_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "perf", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    modbus = report["modbus"]
    for key in ("tcp_regs_over_bare", "requests_over_optimal", "rtu_cycle_over_floor"):
        assert isinstance(modbus[key], float) and modbus[key] > 0, key
        figure = modbus["figures"][key]
        assert figure["measured"] > 0 and figure["baseline"] > 0 and figure["unit"]
        assert modbus[key] == pytest.approx(figure["measured"] / figure["baseline"], rel=0.02)
        assert key in result.stdout
    assert modbus["figures"]["rtu_cycle_over_floor"]["failures"] == 0
    safety = report["safety"]
    assert 0 < safety["trip_latency_p99_ms"] < 1000 and safety["trip_over_baseline_p99"] > 0
    assert 0 <= safety["fault_drops_ok"] <= 1 and safety["detail"]["faults"]["deaths"] == {
        "SIGKILL": 10,
        "SIGSTOP": 10,
    }
    assert safety["detail"]["latency"]["trips"] == 100 and "fault_drops_ok" in result.stdout
    for key in (
        "trip_latency_rule_p99_ms",
        "trip_latency_qc_p99_ms",
        "supervisor_rss_mb",
        "supervisor_start_s",
    ):
        assert safety[key] > 0 and key in result.stdout, key
    assert safety["detail"]["cause_trips"]["rule_trips"] >= 100 <= safety["detail"]["cause_trips"]["qc_trips"]
    assert 0 <= safety["fault_trips_ok"] <= 1 and "input:emoji" in safety["detail"]["injected_faults"]["runs"]
    assert report["meta"]["quick"] is True
