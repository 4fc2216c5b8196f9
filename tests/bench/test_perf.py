"""`bench perf --quick` runs end to end and writes the JSON of CONTRACT.md (figures are not judged here:
speed is measured by `bench perf`, not by timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_quick_perf_writes_every_modbus_ratio_with_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "perf", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
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
    assert report["meta"]["quick"] is True
