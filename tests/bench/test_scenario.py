"""`bench scenario`: scenario files refused with the file and the key, the judges on known timelines, the
camera's burst, and every shipped scenario's quick form passing against a real `appliance run`, while one
that cannot hold fails with exit 1 and says which expectation and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from appliance.config.loader import ConfigError
from bench.camera.conveyor import Conveyor, ConveyorSettings
from bench.camera.mjpeg import CameraSettings, SimulatedCamera
from bench.control import FaultBoard, build_app
from bench.harness.runtime import first_credential
from bench.harness.watched import Run
from bench.harness.worlds import world_config
from bench.modbus_slave import Faults
from bench.scenario.checks import judge, seen
from bench.scenario.model import (
    QUICK_MAX_S,
    CameraWorld,
    FaultStep,
    Scenario,
    World,
    load_scenario,
    scenario_path,
    shipped,
)
from bench.scenario.world import CREDENTIAL_ENV, edit_world
from tests.conftest import ROOT

GOOD = """
description = "a test"
duration_s = 20
quick = { scale = 0.5 }
[[steps]]
at_s = 5
name = "cut"
type = "fault"
target = "line-a/3"
no_answer = true
[[expect]]
type = "never_tripped"
"""


def bench(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CREDENTIAL_ENV}
    if token is not None:
        env[CREDENTIAL_ENV] = token
    return subprocess.run(
        [sys.executable, "-m", "bench", "scenario", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("", 'colour = "red"\n'), ": colour: unknown key"),
        (("no_answer = true", "no_anser = true"), ": steps[0].no_anser: unknown key"),
        (('type = "fault"', 'type = "explode"'), ": steps[0].type: unknown type 'explode'"),
        (("no_answer = true", "babble = 1.5"), ": steps[0].babble: out of range"),
        (('type = "never_tripped"', 'type = "sometimes"'), ": expect[0].type: unknown type 'sometimes'"),
        (("scale = 0.5", "scale = 4"), ": quick.scale: out of range"),
        (("duration_s = 20", "duration_s = 200"), "the quick run takes 100 s; at most 60 s"),
        (("at_s = 5", "at_s = 25"), "steps: fault at 25 s is not before duration_s"),
        (('type = "never_tripped"', 'type = "tripped_within"\nafter = "x"\nwithin_s = 1'), "no step named"),
        (('description = "a test"\n', ""), ": description: missing (required)"),
    ],
)
def test_a_bad_scenario_is_refused_saying_the_file_and_the_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = tmp_path / "bad.toml"
    old, new = change
    path.write_text(GOOD.replace(old, new, 1) if old else new + GOOD)
    with pytest.raises(ConfigError) as refused:
        load_scenario(path)
    assert any(line.startswith(f"{path}: ") and expected in line for line in refused.value.lines), (
        refused.value.lines
    )


def test_the_command_refuses_a_bad_file_or_name_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("colour = 1\n" + GOOD)
    refused = bench(str(path))
    assert refused.returncode == 2 and f"{path}: colour: unknown key" in refused.stderr
    unknown = bench("no-such-scenario")
    assert unknown.returncode == 2 and "no scenario 'no-such-scenario'; shipped: " in unknown.stderr
    assert bench().returncode == 2  # no name and no --list


def test_every_shipped_scenario_loads_lists_and_has_a_quick_form_under_a_minute() -> None:
    names = shipped()
    assert {"normal-shift", "defect-burst", "flapping-slave"} <= set(names)
    for name in names:
        scenario = load_scenario(scenario_path(name))
        assert scenario.duration_s * scenario.quick.scale <= QUICK_MAX_S
    listed = bench("--list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == names


def test_a_fault_step_takes_exactly_the_faults_the_bench_knows() -> None:
    assert set(FaultStep.model_fields) - {"at_s", "name", "type", "target"} == set(Faults.KINDS)


def test_the_world_gets_the_scenarios_camera(tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        tomllib.loads(GOOD + "[world]\ncamera = { defect_rate = 0.5, weights = { crack = 2.0 }, seed = 3 }\n")
    )
    text, _ = world_config(8123, False, tmp_path)
    camera = tomllib.loads(edit_world(scenario.world)(text))["bench"]["cameras"][0]
    assert camera["defect_rate"] == 0.5 and camera["weights"] == {"crack": 2.0} and camera["seed"] == 3
    assert camera["name"] == "line-cam"
    assert edit_world(Scenario.model_validate(tomllib.loads(GOOD)).world)(text) == text


def test_a_burst_makes_the_next_parts_all_of_one_label() -> None:
    conveyor = Conveyor(ConveyorSettings(frames_per_part=4, defect_rate=0.0))
    for _ in range(10):
        conveyor.next_frame()
    first, last = conveyor.burst("crack", 3)
    assert last - first == 3 and first > 1
    labels = [conveyor.label(i) for i in range(first - 1, last + 1)]
    assert labels == ["ok", "crack", "crack", "crack", "ok"]
    with pytest.raises(ValueError, match="a burst is at least one part"):
        conveyor.burst("rust", 2)


def test_the_fault_api_orders_a_burst_and_refuses_a_bad_one() -> None:
    camera = SimulatedCamera(CameraSettings("127.0.0.1", 0, 10.0))
    client = TestClient(build_app(FaultBoard([], [], cameras={"cam": camera})))
    answer = client.post("/camera/burst", json={"target": "cam", "label": "crack", "parts": 2})
    assert answer.status_code == 200
    first, last = answer.json()["parts"]
    assert [camera.conveyor.label(i) for i in range(first, last)] == ["crack", "crack"]
    for body in ({"target": "cam", "label": "rust"}, {"target": "cam", "label": "crack", "parts": True}):
        assert client.post("/camera/burst", json=body).status_code == 400
    assert "no camera 'other'" in client.post("/camera/burst", json={"target": "other"}).json()["error"]


def sample(t: float, trips: int = 0, state: str = "ok", flow: str = "ok", insights: Any = ()) -> Any:
    return {
        "t": t,
        "wall": 1000.0 + t,
        "box_time": 1000.0 + t,
        "estop": {"state": state, "phase": state, "reason": "", "causes": [], "trips": trips, "resets": 0},
        "sensors": {
            "flow-3.flow": {"quality": flow, "value": 1.0},
            "tank-1.level": {"quality": "ok", "value": 2.0},
        },
        "qc": {"frames": int(t * 10), "fps": 10.0, "defects": {}, "p50_ms": 5.0, "p99_ms": 9.0},
        "insights": list(insights),
    }


def verdicts(expect: str, samples: list[dict[str, Any]], steps: list[dict[str, Any]]) -> list[Any]:
    doc = tomllib.loads('description = "x"\nduration_s = 20\nquick = { scale = 1 }\n' + expect)
    doc["steps"] = [{"at_s": s["t"], "name": s["name"], "type": "clear", "target": "x"} for s in steps]
    return judge(Scenario.model_validate(doc).expect, seen(samples, [], steps))


def test_the_judges_measure_against_their_bounds() -> None:
    steps = [{"name": "cause", "t": 2.0, "ok": True}, {"name": "fix", "t": 6.0, "ok": True}]
    samples = [
        sample(
            t / 2,
            trips=int(t >= 7),
            state="tripped" if 7 <= t < 14 else "ok",
            flow="error" if 5 <= t < 16 else "ok",
            insights=["estop-tripped"] if 8 <= t < 15 else [],
        )
        for t in range(0, 30)
    ]
    expect = """
[[expect]]
type = "tripped_within"
after = "cause"
within_s = 1.0
[[expect]]
type = "restored_within"
after = "fix"
within_s = 2.0
[[expect]]
type = "stale_then_recovered"
sensors = ["flow-3"]
after = "cause"
stale_within_s = 1.0
recovered = "fix"
recover_within_s = 1.0
[[expect]]
type = "insight_raised_and_cleared"
insight = "estop-tripped"
after = "cause"
raised_within_s = 3.0
cleared_by = "fix"
cleared_within_s = 2.0
[[expect]]
type = "sensors_ok"
ignore = ["flow-3"]
[[expect]]
type = "never_tripped"
[[expect]]
type = "qc_decides"
min_frames = 100
max_p99_ms = 10.0
"""
    got = {v.type: v for v in verdicts(expect, samples, steps)}
    assert got["tripped_within"].measured == 1.5 and not got["tripped_within"].held
    assert got["tripped_within"].why == "too late"
    assert got["restored_within"].measured == 1.0 and got["restored_within"].held
    assert got["stale_then_recovered"].measured == {"stale_s": 0.5, "quality": ["error"], "recovered_s": 2.0}
    assert got["stale_then_recovered"].why == "too late: recovered_s"
    assert got["insight_raised_and_cleared"].measured == {"raised_s": 2.0, "cleared_s": 1.5}
    assert got["insight_raised_and_cleared"].held
    assert got["sensors_ok"].held and got["sensors_ok"].measured == 0
    assert not got["never_tripped"].held and got["never_tripped"].measured == 1
    assert got["qc_decides"].measured == {"frames": 145, "p99_ms": 9.0} and got["qc_decides"].held


def test_a_judge_says_why_when_what_it_waits_for_never_came() -> None:
    steps = [{"name": "cause", "t": 2.0, "ok": True}, {"name": "fix", "t": 6.0, "ok": False, "error": "409"}]
    samples = [sample(t / 2, flow="stale" if t >= 5 else "ok") for t in range(0, 30)]
    expect = """
[[expect]]
type = "tripped_within"
after = "cause"
within_s = 1.0
[[expect]]
type = "restored_within"
after = "fix"
within_s = 1.0
[[expect]]
type = "sensors_ok"
"""
    got = {v.type: v for v in verdicts(expect, samples, steps)}
    assert got["tripped_within"].why == "the line never tripped after 'cause'"
    assert got["restored_within"].why == "step 'fix' failed: 409"
    assert got["sensors_ok"].why == "flow-3.flow was stale at 2.5 s (25 bad looks)"


def run_quick(name: str, report: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = bench(name, "--quick", "--report", str(report))
    return done, json.loads((report / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["normal-shift", "defect-burst", "flapping-slave", "babbling-slave"])
def test_a_shipped_scenario_passes_quick_against_appliance_run(tmp_path: Path, name: str) -> None:
    done, report = run_quick(name, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["passed"] and all(v["held"] for v in report["verdicts"])
    assert f"scenario {name}: passed" in done.stdout and "failures so far: 0" in done.stdout
    looks = [s for s in report["samples"] if "error" not in s]
    assert len(looks) >= 0.9 * report["duration_s"] / 0.5
    assert {"estop", "sensors", "qc", "sync", "polls", "insights", "rss_mb"} <= set(looks[-1])
    assert looks[-1]["rss_mb"] > 20 and looks[-1]["sensors"]["air.temperature"]["quality"] == "ok"
    assert (tmp_path / "box" / "appliance.log").is_file()


@pytest.mark.slow
def test_a_scenario_that_cannot_hold_fails_with_exit_1_and_says_which_and_why(tmp_path: Path) -> None:
    """Against a box already running (--target), as a VM or a device would be: our own `appliance run`."""
    path = tmp_path / "tripped.toml"
    path.write_text(
        'description = "a manual trip in a shift that must not trip"\nduration_s = 8\nquick = { scale = 1 }\n'
        '[[steps]]\nat_s = 2\ntype = "estop_trip"\nreason = "guard open"\n'
        '[[expect]]\ntype = "never_tripped"\n[[expect]]\ntype = "sensors_ok"\n'
    )
    box = tmp_path / "box"
    box.mkdir()
    no_crack = World(holes="zero", camera=CameraWorld(weights={"scratch": 1.0}))  # only our trip trips
    run = Run(box, broker=False, edit=edit_world(no_crack))
    try:
        assert run.wait_until(lambda _: True, timeout=60), (box / "appliance.log").read_text()[-2000:]
        url = run.status_url.removesuffix("api/v1/status")
        target = ["--target", url, "--control", run.control]
        refused = bench(str(path), "--quick", *target)
        assert refused.returncode == 2 and f"set {CREDENTIAL_ENV}" in refused.stderr
        token = first_credential(run.data)
        done = bench(str(path), "--quick", "--report", str(tmp_path / "report"), *target, token=token)
    finally:
        run.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED never_tripped: measured 1 bound 0  (tripped: manual trip by admin: guard open" in (
        done.stdout
    )
    assert "held   sensors_ok: measured 0 bound 0" in done.stdout
    assert "scenario tripped: FAILED" in done.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["target"] == url and [v["held"] for v in report["verdicts"]] == [False, True]
    assert report["steps"][0]["ok"] and report["steps"][0]["type"] == "estop_trip"
    assert [e["kind"] for e in report["events"]].count("estop.trip") == 1
    assert report["samples"][-1]["rss_mb"] > 20  # a box on this machine: its memory is read
