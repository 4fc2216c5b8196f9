"""`bench perf`: a section whose dependency is missing is skipped with the reason and the install command, a
section that fails is written as an error, and the others still run and are written; sections named on
the command line; the table's verdicts. These run the runner on small sections registered here. And
`bench perf --quick` end to end (figures are not judged here: speed is measured by `bench perf`, not by
timed tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.perf import runner
from bench.perf.needs import MOSQUITTO, Part, Section
from bench.perf.table import table
from tests.conftest import ROOT


@pytest.mark.slow
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
    runtime = report["runtime"]
    for key in ("rss_mb", "startup_s", "first_decision_s", "flash_bytes_per_reading", "stop_s_max"):
        assert runtime[key] > 0 and key in result.stdout, key
    assert runtime["startup_s"] <= runtime["first_decision_s"]
    footprint = runtime["figures"]["rss_mb"]
    assert footprint["min"] <= runtime["rss_mb"] <= footprint["max"]


def hide_mosquitto(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without mosquitto: Debian's /usr/sbin/mosquitto, if any, is not found."""
    which = shutil.which

    def without(cmd: str, mode: int = os.F_OK | os.X_OK, path: str | None = None) -> str | None:
        return None if Path(cmd).name == "mosquitto" else which(cmd, mode, path)

    monkeypatch.setattr(shutil, "which", without)


def with_mosquitto(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """A `mosquitto` on PATH whatever this machine has (the sections here never start it)."""
    folder.mkdir()
    fake = folder / "mosquitto"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def measured(key: str, value: float) -> dict[str, Any]:
    return {key: value, "figures": {key: {"measured": value * 10, "baseline": 10, "unit": "things/s"}}}


def broken(quick: bool) -> dict[str, Any]:
    raise RuntimeError("the bench world did not come up")


def partly(quick: bool) -> dict[str, Any]:
    """Measures `wide` always, `deep` only with mosquitto, as a section asks its own parts' needs."""
    result = measured("wide", 0.5)
    if MOSQUITTO.present():
        result |= {"deep": 2.0, "figures": result["figures"] | measured("deep", 2.0)["figures"]}
    return result


SECTIONS = {
    "fine": Section(lambda quick: measured("speed", 1.2), {"speed": (">=", 1.0)}),
    "brokered": Section(lambda quick: measured("delivered", 1.0), {"delivered": (">=", 1.0)}, (MOSQUITTO,)),
    "broken": Section(broken, {"lost": ("<=", 0)}),
    "partly": Section(
        partly,
        {"wide": ("<=", 1.0), "deep": ("<=", 1.0)},
        parts=(Part("the deep run", (MOSQUITTO,), ("deep",)),),
    ),
}


@pytest.fixture
def sections(monkeypatch: pytest.MonkeyPatch) -> dict[str, Section]:
    monkeypatch.setattr(runner, "SECTIONS", dict(SECTIONS))
    return SECTIONS


def test_without_mosquitto_its_sections_are_skipped_a_failed_one_is_an_error_and_the_rest_is_written(
    sections: dict[str, Section],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hide_mosquitto(monkeypatch)
    out = tmp_path / "perf.json"
    assert main(["perf", "--json", str(out), *sections]) == 1  # a section failed
    report = json.loads(out.read_text())
    assert report["fine"]["speed"] == 1.2 and report["fine"]["figures"]["speed"]["unit"] == "things/s"
    assert report["brokered"] == {"skipped": "mosquitto is not installed (apt-get install mosquitto)"}
    assert report["broken"]["error"] == "RuntimeError: the bench world did not come up"
    assert report["partly"]["wide"] == 0.5 and "deep" not in report["partly"]
    assert report["partly"]["partly_skipped"] == {
        "the deep run": "mosquitto is not installed (apt-get install mosquitto)"
    }
    printed = capsys.readouterr()
    assert "Traceback" in printed.err and "the bench world did not come up" in printed.err
    assert (
        "bench perf: brokered: skipped: mosquitto is not installed (apt-get install mosquitto)" in printed.err
    )
    assert "bench perf: partly: leaves out the deep run" in printed.err
    rows = {tuple(line.split()[:2]): line for line in printed.out.splitlines()}
    assert rows[("fine", "speed")].endswith(" ok")
    assert rows[("brokered", "delivered")].endswith(
        "skipped: mosquitto is not installed (apt-get install mosquitto)"
    )
    assert rows[("partly", "wide")].endswith(" ok")
    assert rows[("partly", "deep")].endswith(
        "skipped: mosquitto is not installed (apt-get install mosquitto)"
    )
    assert "error: the section failed" in rows[("broken", "lost")]
    assert "goals: 2 met, 0 missed, 2 skipped, 1 not measured (a section failed)" in printed.out


def test_with_mosquitto_every_part_runs_and_the_exit_says_all_ran(
    sections: dict[str, Section],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_mosquitto(monkeypatch, tmp_path / "bin")
    out = tmp_path / "perf.json"
    assert main(["perf", "--json", str(out), "partly", "brokered"]) == 0
    report = json.loads(out.read_text())
    assert report["brokered"]["delivered"] == 1.0 and report["partly"]["deep"] == 2.0
    assert "partly_skipped" not in report["partly"] and set(report) == {"meta", "brokered", "partly"}
    printed = capsys.readouterr().out
    assert "MISS" in next(
        line for line in printed.splitlines() if line.startswith("partly") and " deep " in line
    )
    assert "goals: 2 met, 1 missed, 0 skipped" in printed


def test_the_json_is_written_after_each_section(
    sections: dict[str, Section], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out, seen = tmp_path / "perf.json", []

    def reader(quick: bool) -> dict[str, Any]:
        seen.append(json.loads(out.read_text()))
        return {}

    monkeypatch.setitem(runner.SECTIONS, "broken", Section(reader, {}))
    assert main(["perf", "--json", str(out), "fine", "broken"]) == 0
    assert seen[0]["fine"]["speed"] == 1.2 and "broken" not in seen[0]


def test_a_long_section_says_it_is_running(
    sections: dict[str, Section], monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr(runner, "say", said.append)
    monkeypatch.setattr(runner, "TICK_S", 0.05)

    def slow(quick: bool) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while not any(line.startswith("fine: running, ") for line in said) and time.monotonic() < deadline:
            time.sleep(0.01)
        return measured("speed", 1.2)

    monkeypatch.setitem(runner.SECTIONS, "fine", Section(slow, {"speed": (">=", 1.0)}))
    runner.run(quick=True, only=["fine"])
    assert said[0] == "fine: started" and any(line.startswith("fine: running, ") for line in said)
    assert said[-1].startswith("fine: done in ")


@pytest.mark.parametrize("argv", [["nosuch"], ["store", "nosuch"], ["--only", "store,nosuch"]])
def test_an_unknown_section_is_refused_with_the_known_ones(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["perf", *argv]) == 2
    err = capsys.readouterr().err
    assert "unknown section 'nosuch'; known: qc, modbus, safety, store, sync, runtime, security" in err


def test_sections_are_named_on_the_command_line(sections: dict[str, Section], tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    assert main(["perf", "--json", str(out), "partly", "fine"]) == 0
    report = json.loads(out.read_text())
    assert list(report) == ["meta", "fine", "partly"] and report["meta"]["only"] == ["partly", "fine"]
    assert main(["perf", "--json", str(out), "--only", "fine"]) == 0
    assert list(json.loads(out.read_text())) == ["meta", "fine"]


def test_the_real_sections_say_what_they_leave_out_without_mosquitto_or_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide_mosquitto(monkeypatch)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    planned = runner.plan(quick=False, names=list(runner.SECTIONS))
    assert planned["sync"] == {"skipped": "mosquitto is not installed (apt-get install mosquitto)"}
    assert planned["runtime"]["the flash window"] == "mosquitto is not installed (apt-get install mosquitto)"
    assert planned["safety"]["fault_trips_ok: the storage runs"].startswith("not running as root")
    assert planned["store"] == planned["modbus"] == {}


def test_only_a_full_run_leaves_out_the_flapping_link_without_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with_mosquitto(monkeypatch, tmp_path / "bin")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert (
        "delivered_unique_over_produced: the flapping link"
        in runner.plan(quick=False, names=["sync"])["sync"]
    )
    assert runner.plan(quick=True, names=["sync"])["sync"] == {}  # --quick has no flapping link to leave out


def test_the_table_judges_each_figure_against_its_goal() -> None:
    sections = {"lat": Section(broken, {"p99_ms": ("<=", 1.0), "fraction": (">=", 1.0)})}
    result = {"meta": {}, "lat": measured("p99_ms", 1.5) | {"fraction": 1.0}}
    result["lat"]["figures"]["fraction"] = {"measured": 10, "baseline": 10, "unit": "deaths"}
    lines = table(result, sections).splitlines()
    assert lines[0].split() == [
        "section",
        "figure",
        "value",
        "goal",
        "measured",
        "baseline",
        "unit",
        "verdict",
    ]
    assert lines[1].split() == ["lat", "p99_ms", "1.500", "<=", "1.0", "15.0", "10", "things/s", "MISS"]
    assert lines[2].split()[-1] == "ok" and lines[-1] == "goals: 1 met, 1 missed, 0 skipped"
