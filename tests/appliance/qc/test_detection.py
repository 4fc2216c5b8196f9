"""SSD-style detection through the QC pipeline: outputs mapped by config, the best score per label fed
to the policy, detections shown in the status.

The fixture tests/fixtures/models/ssd_shaped.tflite was made with the real TFLite converter from this
Keras model (TensorFlow 2.21): GlobalAveragePooling2D of the [1, 64, 64, 3] input gives the mean R, G, B;
outputs are boxes (constant [1, 4, 4]), classes (constant 0, 1, 2, 0), scores (mean R, G, B, then 0) and
count (3). The converter emitted them as classes, count, boxes, scores.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.qc.detection import DetectionOutputs, best_scores, parse
from appliance.qc.model import ModelError
from tests.conftest import ROOT, start_appliance

MODEL = ROOT / "tests/fixtures/models/ssd_shaped.tflite"


def test_parse_reads_count_detections_and_skips_unknown_classes() -> None:
    outputs = [
        np.array([[[0.1, 0.2, 0.3, 0.4]] * 3], np.float32),
        np.array([[1, 7, 0]], np.float32),
        np.array([[0.9, 0.8, 0.4]], np.float32),
        np.array([2], np.float32),
    ]
    found = parse(outputs, DetectionOutputs(), ["cat", "dog"], min_score=0.5)
    assert [d.label for d in found] == ["dog"]  # class 7 is unknown, the third is past the count
    assert found[0].score == pytest.approx(0.9)
    assert found[0].box == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert best_scores(parse(outputs, DetectionOutputs(), ["cat", "dog"])) == pytest.approx({"dog": 0.9})


def test_wrong_output_mapping_is_a_clear_error() -> None:
    shapes = [[1, 4], [1], [1, 4, 4], [1, 4]]
    DetectionOutputs(boxes=2, classes=0, scores=3, count=1).check(shapes)
    with pytest.raises(ModelError, match=r"boxes output has shape \[1, 4\]; expected \[1, N, 4\]"):
        DetectionOutputs().check(shapes)
    with pytest.raises(ModelError, match="the model has 4 outputs"):
        DetectionOutputs(count=9).check(shapes)


@pytest.mark.slow
def test_detections_drive_the_policy_in_appliance_run(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, bgr in enumerate([(200, 30, 30)] * 4 + [(30, 30, 220)] * 4):  # blue parts, then red ones
        cv2.imwrite(str(frames / f"{i:02d}.png"), np.full((120, 160, 3), bgr, np.uint8))
    config = tmp_path / "a.toml"
    config.write_text(
        textwrap.dedent(f"""
        [http]
        listen = "127.0.0.1:0"
        [qc]
        model = "{MODEL}"
        task = "detection"
        labels = ["red", "green", "blue"]
        detection = {{ classes = 0, count = 1, boxes = 2, scores = 3 }}
        camera = {{ type = "directory", uri = "{frames}", fps = 40 }}
        [qc.policy.red]
        severity = "critical"
        threshold = 0.7
        debounce = [2, 3]
    """)
    )
    app = start_appliance(config, tmp_path / "data")
    try:
        status = app.wait_for(lambda s: s["qc"] and s["qc"]["defects"]["red"] >= 2, timeout=30)
        # detections under the policy's lowest threshold are not kept: a red or a blue part, never green
        detections = app.wait_for(lambda s: s["qc"]["detections"])["qc"]["detections"]
        assert {d["label"] for d in detections} <= {"red", "blue"}
        assert status["qc"]["defects"] == {"red": status["qc"]["defects"]["red"]}
        assert all(d["box"] == pytest.approx([0.1, 0.1, 0.5, 0.5]) for d in detections)
    finally:
        assert app.stop() == 0
