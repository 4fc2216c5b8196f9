"""A critical defect's trip counts from the frame: the alarm carries the monotonic time the frame was taken
from the camera, not the time the decision was made, so trip latency includes inference."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np

from appliance.config.qc import QcSettings
from appliance.qc.pipeline import QcPipeline
from bench.models.tflite_builder import image_classifier, write
from drivers.camera import SourceKind, open_source
from drivers.camera.source import Frame
from hal.report import detect


def test_the_alarm_carries_the_frames_capture_time(tmp_path: Path) -> None:
    model = write(tmp_path / "qc.tflite", image_classifier(32, 32, 3, 2))
    settings = QcSettings.model_validate(
        {
            "model": str(model),
            "labels": ["ok", "crack"],
            "camera": {"type": "directory", "uri": str(tmp_path)},
            "policy": {"crack": {"severity": "critical", "threshold": 0.0}},  # every frame confirms it
        }
    )
    plan = detect("/").plan
    alarms: list[tuple[str, int]] = []
    pipeline = QcPipeline(
        settings,
        tmp_path,
        tmp_path / "data",
        lambda: plan,
        lambda events: None,
        alarm=lambda *a: alarms.append(a),
    )

    async def body() -> None:
        await pipeline.open()
        try:
            taken = time.monotonic_ns() - 5_000_000  # the frame came 5 ms before it is processed
            pipeline._process(Frame(np.zeros((32, 32, 3), np.uint8), time.time(), 1, received_ns=taken))
            assert len(alarms) == 1 and alarms[0][0].startswith("QC: crack") and alarms[0][1] == taken
        finally:
            await pipeline.close()

    asyncio.run(body())


def test_a_frame_from_a_source_is_stamped_when_it_is_read(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    source = open_source(SourceKind.DIRECTORY, str(tmp_path))
    source.open()
    try:
        before = time.monotonic_ns()
        frame = source.read()
        assert frame is not None and before <= frame.received_ns <= time.monotonic_ns()
    finally:
        source.close()
