"""The `qc` section of `bench perf`:

- pipeline_over_raw_p50 / _p99: per-frame time from a frame in memory to its decision recorded, through
  the appliance's QC pipeline (preprocessing into the input tensor, invoke, dequantize, policy, stats),
  over a raw loop of the same preprocessing with OpenCV and numpy, set_tensor and invoke() on an
  interpreter with the same settings; the two take turns frame by frame;
- fps_over_raw: frames per second of the pipelined service (camera reader thread, two-frame queue,
  inference thread) fed from memory, over the raw loop's frames per second.

Each model is reported under its own name in `figures`; the section's ratios are the worst over models.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from ai_edge_litert.interpreter import Interpreter

from appliance.config.qc import QcSettings
from appliance.qc.pipeline import QcPipeline
from drivers.camera.source import Frame, FrameSource
from hal.plan import BackendKind
from hal.report import detect


class MemorySource(FrameSource):
    """Frames from a list, as fast as they are taken: the camera's cost is not what is measured."""

    def __init__(self, frames: list[npt.NDArray[np.uint8]]) -> None:
        super().__init__("memory")
        self.frames = frames

    def open(self) -> None:
        return None

    def read(self) -> Frame | None:
        return self._frame(self.frames[self.count % len(self.frames)])

    def close(self) -> None:
        return None


def frames(count: int = 16) -> list[npt.NDArray[np.uint8]]:
    rng = np.random.default_rng(3)
    out = []
    for _ in range(count):
        image = rng.integers(0, 40, (480, 640, 3), dtype=np.uint8)
        cv2.circle(image, (int(rng.integers(200, 440)), 240), 120, (150, 150, 160), -1)
        out.append(image)
    return out


class RawLoop:
    """What a hand-written loop does: resize, convert, normalize or quantize, set_tensor, invoke."""

    def __init__(self, model: Path, threads: int, color: str, input_range: tuple[float, float]) -> None:
        self.interpreter = Interpreter(model_path=str(model), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        _, self.height, self.width, self.channels = self.input["shape"]
        self.color, (self.low, self.high) = color, input_range

    def __call__(self, frame: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
        if self.channels == 1:
            pixels = cv2.resize(
                cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY),
                (self.width, self.height),
                interpolation=cv2.INTER_AREA,
            )[..., None]
        else:
            pixels = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
            if self.color == "rgb":
                pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        dtype = self.input["dtype"]
        if dtype == np.float32:
            tensor = (pixels.astype(np.float32) * ((self.high - self.low) / 255.0) + self.low)[None]
        else:
            scale, zero_point = self.input["quantization"]
            real = pixels.astype(np.float32) * ((self.high - self.low) / 255.0) + self.low
            info = np.iinfo(dtype)
            tensor = np.clip(np.rint(real / scale + zero_point), info.min, info.max).astype(dtype)[None]
        self.interpreter.set_tensor(self.input["index"], tensor)
        self.interpreter.invoke()
        result: npt.NDArray[Any] = self.interpreter.get_tensor(self.output["index"])
        return result


async def _measure(
    model: Path, labels: list[str], color: str, input_range: tuple[float, float], quick: bool
) -> dict[str, Any]:
    plan = detect("/").plan
    threads = next(b.threads for b in plan.backends if b.kind is BackendKind.XNNPACK)
    images = frames()
    raw = RawLoop(model, threads, color, input_range)
    settings = QcSettings.model_validate(
        {
            "model": str(model),
            "labels": labels,
            "color": color,
            "input_range": list(input_range),
            "camera": {"type": "directory", "uri": "memory"},
            "policy": {labels[-1]: {"severity": "warning", "threshold": 0.99}},
        }
    )
    with tempfile.TemporaryDirectory() as data:
        pipeline = QcPipeline(
            settings,
            Path("/"),
            Path(data),
            lambda: plan,
            lambda events: None,
            source=lambda: MemorySource(images),
        )
        await pipeline.open()  # the model loaded, nothing streaming yet
        try:
            warm = 10 if quick else 30
            count = 60 if quick else 400
            ours_ms, raw_ms = [], []
            for i in range(warm + count):
                image = images[i % len(images)]
                t0 = time.perf_counter()
                raw(image)
                t1 = time.perf_counter()
                pipeline._process(Frame(image, time.time(), i))
                t2 = time.perf_counter()
                if i >= warm:
                    raw_ms.append((t1 - t0) * 1000)
                    ours_ms.append((t2 - t1) * 1000)
            seconds = 2.0 if quick else 8.0
            began, n = time.perf_counter(), 0
            while time.perf_counter() - began < seconds:
                raw(images[n % len(images)])
                n += 1
            raw_fps = n / (time.perf_counter() - began)
            pipeline.start_streaming()  # now the pipelined service: reader thread, queue, inference thread
            await asyncio.sleep(1.0)
            before, began = pipeline.frames, time.perf_counter()
            await asyncio.sleep(seconds)
            ours_fps = (pipeline.frames - before) / (time.perf_counter() - began)
            pipeline.stop_streaming()
        finally:
            await pipeline.close()
    p = {q: (float(np.percentile(ours_ms, q)), float(np.percentile(raw_ms, q))) for q in (50, 99)}
    return {
        "pipeline_over_raw_p50": round(p[50][0] / p[50][1], 3),
        "pipeline_over_raw_p99": round(p[99][0] / p[99][1], 3),
        "fps_over_raw": round(ours_fps / raw_fps, 3),
        "p50_ms": [round(p[50][0], 3), round(p[50][1], 3)],
        "p99_ms": [round(p[99][0], 3), round(p[99][1], 3)],
        "fps": [round(ours_fps, 1), round(raw_fps, 1)],
        "threads": threads,
    }


def run(quick: bool, models: dict[str, tuple[Path, list[str], str, tuple[float, float]]]) -> dict[str, Any]:
    per_model = {
        name: asyncio.run(_measure(path, labels, color, rng, quick))
        for name, (path, labels, color, rng) in models.items()
    }
    section: dict[str, Any] = {"figures": {}}
    for key, unit, worst in (
        ("pipeline_over_raw_p50", "ms", max),
        ("pipeline_over_raw_p99", "ms", max),
        ("fps_over_raw", "frames/s", min),
    ):
        name = worst(per_model, key=lambda m: per_model[m][key])
        figures = per_model[name][
            "fps" if key == "fps_over_raw" else "p50_ms" if key.endswith("p50") else "p99_ms"
        ]
        section[key] = per_model[name][key]
        section["figures"][key] = {
            "measured": figures[0],
            "baseline": figures[1],
            "unit": unit,
            "model": name,
            "per_model": {m: per_model[m][key] for m in per_model},
        }
    section["models"] = per_model
    return section
