"""`appliance hal`: the report as a table and as JSON, on this machine and on a fixture tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def hal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "hal", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_this_machine_reports_its_real_cpu_and_a_cpu_plan() -> None:
    result = hal("--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert report["cpu"]["model"] in cpuinfo
    assert report["cpu"]["cores"] == cpuinfo.count("processor\t:")
    assert [b["backend"] for b in report["inference"]["backends"]] == ["xnnpack", "cpu"]
    table = hal()
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].startswith("board ") and "x86_64 PC" in lines[0]
    assert any(line.startswith("inference 1") and "xnnpack" in line for line in lines)


def test_a_root_that_is_not_a_directory_exits_2(tmp_path: Path) -> None:
    result = hal("--root", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "not a directory" in result.stderr
