"""The demo model on the bench's conveyor camera through `appliance run`: defects found match the parts
the camera showed, and a frozen or dropped camera is reopened."""

from __future__ import annotations

import json
import re
import textwrap
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.appliance.field.test_fieldbus import post
from tests.conftest import ROOT, ApplianceProcess, free_port, start_appliance

pytestmark = pytest.mark.slow

LABELS = ["ok", "scratch", "missing_hole", "crack", "stain", "misplaced"]


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApplianceProcess, int, int]]:
    tmp = tmp_path_factory.mktemp("camera")
    camera, control = free_port(), free_port()
    policy = "".join(
        f'[qc.policy.{label}]\nseverity = "{"critical" if label == "crack" else "warning"}"\n'
        f"threshold = 0.7\ndebounce = [2, 3]\n"
        for label in LABELS[1:]
    )
    config = tmp / "a.toml"
    config.write_text(
        textwrap.dedent(f"""
        [http]
        listen = "127.0.0.1:0"
        [qc]
        model = "{ROOT / "bench/models/qc_demo_int8.tflite"}"
        labels = {json.dumps(LABELS)}
        input_range = [0.0, 255.0]
        camera = {{ type = "stream", uri = "http://127.0.0.1:{camera}/stream.mjpg", stall_s = 2.0 }}
    """)
        + policy
        + textwrap.dedent(f"""
        [bench]
        control = "127.0.0.1:{control}"
        [[bench.cameras]]
        name = "cam"
        port = {camera}
        fps = 20
        frames_per_part = 12
        defect_rate = 0.6
        seed = 11
    """)
    )
    app = start_appliance(config, tmp / "data")
    try:
        yield app, camera, control
    finally:
        app.close()


def truth(camera: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{camera}/truth", timeout=5) as response:
        return dict(json.load(response))


def test_defects_found_are_the_defects_shown(line: tuple[ApplianceProcess, int, int]) -> None:
    app, camera, _ = line
    status = app.wait_for(lambda s: s["qc"] and sum(s["qc"]["defects"].values()) >= 6, timeout=60)
    shown = {t["label"] for t in truth(camera)["history"] if t["label"]}
    found = {label for label, n in status["qc"]["defects"].items() if n}
    assert found <= shown, (found, shown)  # nothing reported that the camera never showed
    assert status["qc"]["latency_ms"]["p50"] < 100  # the default budget; speed is not this test's point
    with urllib.request.urlopen(app.url + "api/v1/events?since=0", timeout=5) as response:
        events = json.load(response)
    assert {e["data"]["label"] for e in events} <= shown
    assert all(e["severity"] == ("critical" if e["data"]["label"] == "crack" else "warning") for e in events)


def test_a_frozen_camera_is_reopened(line: tuple[ApplianceProcess, int, int]) -> None:
    app, camera, control = line
    before = app.status()["qc"]["camera"]
    post(control, "/camera", {"target": "cam", "action": "freeze"})
    try:
        failed = app.wait_for(lambda s: s["qc"]["camera"]["failures"] > before["failures"], timeout=30)
    finally:
        post(control, "/camera", {"target": "cam", "action": "resume"})
    # the reason is the stall (stall_s = 2; FFmpeg's read gives up after 5), not a stream that ended
    reason = failed["qc"]["camera"]["last_error"] or ""
    stalled = re.fullmatch(rf"http://127\.0\.0\.1:{camera}/stream\.mjpg: no frame for (\d+) s", reason)
    assert stalled is not None and int(stalled.group(1)) >= 2, reason
    assert failed["qc"]["camera"]["failures"] == before["failures"] + 1
    frames = app.status()["qc"]["frames"]
    after = app.wait_for(lambda s: s["qc"]["frames"] > frames + 10, timeout=30)
    assert after["qc"]["camera"]["reopens"] > before["reopens"]
    assert after["qc"]["camera"]["state"] == "streaming"


def test_a_dropped_camera_connection_is_reopened(line: tuple[ApplianceProcess, int, int]) -> None:
    app, _, control = line
    before = app.status()["qc"]["camera"]
    assert post(control, "/camera", {"target": "cam", "action": "drop"})["result"] >= 1
    after = app.wait_for(
        lambda s: (
            s["qc"]["camera"]["reopens"] > before["reopens"] and s["qc"]["camera"]["state"] == "streaming"
        ),
        timeout=30,
    )
    frames = after["qc"]["frames"]
    app.wait_for(lambda s: s["qc"]["frames"] > frames + 10, timeout=30)
