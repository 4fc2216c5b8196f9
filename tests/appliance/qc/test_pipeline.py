"""The QC pipeline in `appliance run`: frames from a folder, a real LiteRT model, decisions as events in the
store, evidence served over HTTP."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.models.tflite_builder import image_classifier, write
from hal.report import detect
from tests.conftest import start_appliance

pytestmark = pytest.mark.slow

COLOURS = {"red": (0, 0, 220), "green": (0, 200, 0), "blue": (220, 0, 0)}  # BGR
SEQUENCE = ["blue"] * 6 + ["red"] * 4 + ["blue"] * 6 + ["green"] * 3


def test_defects_become_events_with_evidence(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, colour in enumerate(SEQUENCE):
        image = np.full((240, 320, 3), COLOURS[colour], np.uint8)
        cv2.imwrite(str(frames / f"{i:03d}.png"), image)
    write(tmp_path / "rgb.tflite", image_classifier(64, 64, 3, 3, dtype="uint8"))
    config = tmp_path / "a.toml"
    config.write_text(
        textwrap.dedent(f"""
        [http]
        listen = "127.0.0.1:0"
        [qc]
        model = "rgb.tflite"
        labels = ["red", "green", "blue"]
        camera = {{ type = "directory", uri = "{frames}", fps = 40 }}
        [qc.policy.red]
        severity = "critical"
        threshold = 0.8
        debounce = [2, 3]
        [qc.policy.green]
        severity = "warning"
        threshold = 0.8
    """)
    )
    app = start_appliance(config, tmp_path / "data")
    try:
        status = app.wait_for(lambda s: s["qc"] and min(s["qc"]["defects"].values()) >= 2, timeout=30)
        qc = status["qc"]
        assert qc["frames"] > len(SEQUENCE) and qc["fps"] > 10
        assert (
            qc["latency_ms"]["p50"] < 100
        )  # the default latency budget; the timing is not this test's point
        # the plan's best backend this machine can load: a delegate the HAL planned for, else XNNPACK
        planned = detect(Path("/")).plan.backends
        assert qc["inference"]["backend"] in {str(b.kind) for b in planned if b.delegate} | {"xnnpack"}
        if not any(b.delegate for b in planned):
            assert qc["inference"]["backend"] == "xnnpack"
        # one confirmed red part per pass through the folder: four red frames are one decision
        assert qc["defects"]["red"] <= qc["frames"] // len(SEQUENCE) + 1
        app.wait_for(lambda s: s["services"]["store"]["events_committed"] >= 4)
        with urllib.request.urlopen(app.url + "api/v1/events?since=0", timeout=5) as response:
            recorded = json.load(response)
        red = [e for e in recorded if e["data"]["label"] == "red"]
        assert red and red[0]["severity"] == "critical" and red[0]["kind"] == "qc.defect"
        assert {e["severity"] for e in recorded if e["data"]["label"] == "green"} == {"warning"}
        with urllib.request.urlopen(app.url + f"api/v1/events?since={red[0]['id']}", timeout=5) as response:
            later = json.load(response)
        assert later and all(e["id"] > red[0]["id"] for e in later)
        reject = app.wait_for(lambda s: s["qc"]["evidence"]["saved"] >= 1)["qc"]["rejects"][0]
        # the newest reject's files are written a moment after it is listed, by the evidence thread
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(
                    app.url + "evidence/" + reject["thumbnail"], timeout=5
                ) as response:
                    thumb = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
                break
            except urllib.error.HTTPError as error:
                error.close()
                if error.code != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert thumb is not None and thumb.shape[1] == 160  # the long side of the thumbnail
    finally:
        assert app.stop() == 0


def test_a_model_that_does_not_fit_the_labels_stops_the_start(tmp_path: Path) -> None:
    write(tmp_path / "m.tflite", image_classifier(32, 32, 3, 4, dtype="float32"))
    (tmp_path / "frames").mkdir()
    config = tmp_path / "a.toml"
    config.write_text(
        textwrap.dedent(f"""
        [http]
        listen = "127.0.0.1:0"
        [qc]
        model = "m.tflite"
        labels = ["ok", "bad"]
        camera = {{ type = "directory", uri = "{tmp_path / "frames"}" }}
    """)
    )
    app = start_appliance(config, tmp_path / "data", ready=False)
    assert app.wait() == 1
    assert "output 0 has 4 values but qc.labels names 2" in app.output


def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text(
        '[qc]\nmodel = "nope.tflite"\nlabels = ["a"]\ncamera = { type = "directory", uri = "x" }\n'
    )
    app = start_appliance(config, tmp_path / "data", ready=False)
    assert app.wait() == 2
    assert f"{config}: qc.model: no such file: {tmp_path / 'nope.tflite'}" in app.output
