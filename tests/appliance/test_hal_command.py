"""`appliance hal`: the report as a table and as JSON, on this machine and on a fixture tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hal.report import detect
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


def test_this_machine_reports_what_the_hal_finds_on_it() -> None:
    # an x86 PC, an arm64 board or the image's arm64 VM: the command shows what the HAL detects here
    here = json.loads(json.dumps(detect(Path("/")).to_dict()))
    result = hal("--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for section in ("board", "cpu", "accelerators", "inference"):
        assert report[section] == here[section], section
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert report["cpu"]["cores"] == cpuinfo.count("processor\t:")
    assert [b["backend"] for b in report["inference"]["backends"]][-2:] == ["xnnpack", "cpu"]
    table = hal()
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    board = here["board"]
    assert lines[0].startswith("board ") and f"{board['name']} ({board['key']})" in lines[0]
    first = here["inference"]["backends"][0]["backend"]
    assert any(line.startswith("inference 1") and f"{first}: " in line for line in lines)


def test_a_root_that_is_not_a_directory_exits_2(tmp_path: Path) -> None:
    result = hal("--root", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "not a directory" in result.stderr
