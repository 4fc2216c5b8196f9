"""The QC pipeline as a service: the camera reader fills a two-frame queue (oldest dropped), one inference
thread preprocesses into the input tensor, invokes and decides, so capture overlaps inference. Decisions
go to the event loop as events; rejects are kept as evidence."""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config.camera import CAMERA_SOURCES
from appliance.config.qc import QcSettings
from appliance.qc.detection import Detection, DetectionOutputs, best_scores, parse
from appliance.qc.evidence import EvidenceStore
from appliance.qc.evidence_files import evidence_name
from appliance.qc.model import ModelError, QcModel, softmax
from appliance.qc.policy import ClassRule, Decision, DecisionPolicy
from appliance.records import Event, Severity
from appliance.service import Service
from appliance.status import qc as section
from drivers.camera import CameraReader, Frame, FrameSource
from hal.inference import InferenceEngine
from hal.plan import InferencePlan

log = logging.getLogger(__name__)

EventSink = Callable[[list[Event]], None]
LATENCY_WINDOW = 1000
# upper bounds (ms) of the latency histogram's buckets; one more bucket holds everything slower
LATENCY_BUCKETS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


class LatencyHistogram:
    """Every frame's latency since start in fixed buckets, for /metrics: one bisect and two adds a frame."""

    def __init__(self, bounds_ms: tuple[float, ...] = LATENCY_BUCKETS_MS) -> None:
        self.bounds_ms = bounds_ms
        self.counts = [0] * (len(bounds_ms) + 1)
        self.sum_ms = 0.0

    def observe(self, ms: float) -> None:
        """Counts one latency in the first bucket whose bound is at least `ms` (Prometheus's `le`)."""
        self.counts[bisect.bisect_left(self.bounds_ms, ms)] += 1
        self.sum_ms += ms

    def status(self) -> section.LatencyHistogram:
        """`count` is the sum of the copied counts, so it always agrees with them."""
        counts = list(self.counts)  # one copy while the inference thread keeps counting
        return section.LatencyHistogram(
            le_ms=list(self.bounds_ms), counts=counts, sum_ms=round(self.sum_ms, 3), count=sum(counts)
        )


class QcPipeline(Service):
    name = "qc"
    start_timeout_s = 15.0  # a model loads in seconds on a small board, more on an accelerator
    stop_timeout_s = 1.0  # the camera and inference threads end, evidence is written

    def __init__(
        self,
        settings: QcSettings,
        config_folder: Path,
        data_dir: Path,
        plan: Callable[[], InferencePlan],
        sink: EventSink,
        source: Callable[[], FrameSource] | None = None,
        alarm: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__()
        self.settings, self.sink, self.plan = settings, sink, plan
        self.alarm = alarm  # told of a critical defect at once, in the inference thread (the stop output)
        self.model_path = (config_folder / settings.model).resolve()
        self.evidence = EvidenceStore(
            data_dir / settings.evidence.dir,
            int(settings.evidence.budget_mb * 1e6),
            settings.evidence.thumbnail_px,
            settings.evidence.jpeg_quality,
        )
        cam = settings.camera

        def camera() -> FrameSource:
            return CAMERA_SOURCES.get(cam.type)(cam)

        # `source` replaces the configured camera (benchmarks feed frames from memory)
        recorded = cam.recorded or source is not None
        self.reader = CameraReader(
            source or camera,
            queue_size=settings.queue_frames,
            stall_s=cam.stall_s,
            block_when_full=recorded,
            prepare=self._prepare,
        )
        self.policy = DecisionPolicy(
            {
                label: ClassRule(
                    label, Severity(rule.severity), rule.threshold, rule.debounce[0], rule.debounce[1]
                )
                for label, rule in settings.policy.items()
            }
        )
        self.engine: InferenceEngine | None = None
        self.model: QcModel | None = None
        self.frames = 0
        self.defects: collections.Counter[str] = collections.Counter()
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self.latency_histogram = LatencyHistogram()
        self.frame_times: collections.deque[float] = collections.deque(maxlen=200)
        self.rejects: collections.deque[section.Reject] = collections.deque(maxlen=12)
        self.last_scores: np.ndarray | None = None
        self._watched = [(label, settings.labels.index(label)) for label in settings.policy]
        d = settings.detection
        self.detection = DetectionOutputs(d.boxes, d.classes, d.scores, d.count)
        self._min_score = min((rule.threshold for rule in settings.policy.values()), default=0.5)
        self.last_detections: list[Detection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine = InferenceEngine(self.model_path, self.plan())
        await asyncio.to_thread(self.engine.open)
        self.model = QcModel(
            self.engine,
            self.settings.color,
            (self.settings.input_range[0], self.settings.input_range[1]),
            self.settings.resize,
        )
        outputs = self.model.outputs
        if self.settings.task == "detection":
            self.detection.check([d["shape"] for d in outputs])
        elif self.settings.output >= len(outputs):
            raise ModelError(f"qc.output = {self.settings.output}, but the model has {len(outputs)} outputs")
        elif (size := int(np.prod(outputs[self.settings.output]["shape"]))) != len(self.settings.labels):
            raise ModelError(
                f"{self.model_path.name}: output {self.settings.output} has {size} values but "
                f"qc.labels names {len(self.settings.labels)}"
            )
        self.evidence.start()

    async def run(self) -> None:
        self.start_streaming()
        await asyncio.Event().wait()  # the threads do the work; stop() cancels this

    async def close(self) -> None:
        await asyncio.to_thread(self.stop_streaming)
        await asyncio.to_thread(self.evidence.stop)
        if self.engine is not None:
            self.engine.close()

    def status(self) -> section.QcStatus:
        lat = np.array(self.latencies) if self.latencies else None
        times = list(self.frame_times)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        engine = self.engine.status() if self.engine else {}
        return section.QcStatus(
            **self.basics(),
            frames=self.frames,
            fps=round(fps, 2),
            defects={label: self.defects.get(label, 0) for label in self.policy.rules},
            latency_ms=section.Percentiles(
                p50=round(float(np.percentile(lat, 50)), 3) if lat is not None else None,
                p99=round(float(np.percentile(lat, 99)), 3) if lat is not None else None,
            ),
            latency_histogram=self.latency_histogram.status(),
            latency_budget_ms=self.settings.latency_budget_ms,
            scores=self._shown_scores(),
            active=sorted(self.policy.active),
            detections=[
                section.Detection(label=d.label, score=round(d.score, 4), box=[round(v, 4) for v in d.box])
                for d in self.last_detections[:20]
            ],
            rejects=list(self.rejects)[::-1],
            camera=section.CameraStatus.model_validate(self.reader.status()),
            inference=section.InferenceStatus(
                backend=engine.get("active"),
                fallbacks=engine.get("fallbacks"),
                recoveries=engine.get("recoveries"),
            ),
            evidence=self.evidence.status(),
        )

    def _shown_scores(self) -> dict[str, float]:
        """The latest frame's scores of the watched classes and the ten highest."""
        if self.last_scores is None:
            return {}
        labels, scores = self.settings.labels, self.last_scores
        shown = {i for _, i in self._watched} | set(np.argsort(scores)[::-1][:10].tolist())
        return {labels[i]: round(float(scores[i]), 4) for i in sorted(shown)}

    def _prepare(self, frame: Frame) -> Frame:
        """In the camera's thread: resize for the model while the previous frame is being inferred."""
        if self.model is None:
            return frame
        return dataclasses.replace(frame, prepared=self.model.pre.prepare(frame.image))

    def start_streaming(self) -> None:
        """The camera reader and the inference thread: capture overlaps inference."""
        if self._thread is not None:
            return
        self.reader.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._infer_loop, name="qc-inference", daemon=True)
        self._thread.start()

    def stop_streaming(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.reader.stop()

    def _infer_loop(self) -> None:
        while not self._stop.is_set():
            frame = self.reader.take(timeout=0.5)
            if frame is None:
                continue
            try:
                self._process(frame)
            except Exception:  # one bad frame must not stop QC; the service loop would restart it anyway
                log.exception("qc: frame %d failed", frame.index)

    def _process(self, frame: Frame) -> None:
        assert self.model is not None
        began = time.perf_counter()
        outputs = self.model.run(frame.image, frame.prepared)
        if self.settings.task == "detection":
            found = parse([o.values for o in outputs], self.detection, self.settings.labels, self._min_score)
            watched = best_scores(found)
            scores = np.array([watched.get(label, 0.0) for label in self.settings.labels], np.float32)
            self.last_detections = found
        else:
            scores = outputs[self.settings.output].values.reshape(-1)
            if self.settings.output_activation == "softmax":
                scores = softmax(scores)
            # only the classes the policy watches: a 1000-class model costs no more than a 6-class one here
            watched = {label: float(scores[i]) for label, i in self._watched}
        decisions = self.policy.decide(watched, frame.index, frame.ts)
        latency_ms = (time.perf_counter() - began) * 1000  # frame in memory -> decision recorded
        self.latencies.append(latency_ms)
        self.latency_histogram.observe(latency_ms)
        self.frames += 1
        self.frame_times.append(time.monotonic())  # monotonic: the camera's stale rule counts on it
        self.last_scores = scores
        if decisions:
            self._decided(frame, decisions)

    def _decided(self, frame: Frame, decisions: list[Decision]) -> None:
        if self.alarm is not None and (critical := [d for d in decisions if d.severity is Severity.CRITICAL]):
            self.alarm(
                f"QC: {critical[0].label} ({critical[0].score:.2f}) on frame {frame.index}",
                frame.received_ns,  # the trip's latency counts from the frame's capture, not the decision
            )
        events = []
        for decision in decisions:
            self.defects[decision.label] += 1
            data: dict[str, Any] = {
                "label": decision.label,
                "score": round(decision.score, 4),
                "frame": frame.index,
            }
            if decision.severity is not Severity.INFO:
                name = evidence_name(decision.label, frame.index, frame.ts)
                data["thumbnail"] = self.evidence.save(name, frame.image)
                data["image"] = f"{name}.jpg"
                self.rejects.append(section.Reject(ts=frame.ts, **data, severity=decision.severity))
            events.append(
                Event(
                    frame.ts,
                    "qc.defect",
                    decision.severity,
                    "qc",
                    f"{decision.label} ({decision.score:.2f}) on frame {frame.index}",
                    data,
                )
            )
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.sink, events)
