"""The camera reader: a thread that takes frames from a source into a bounded queue, and reopens a source
that fails or stalls, with backoff. When the queue is full a live camera's oldest frame is dropped (and
counted): the freshest frame is the one worth inspecting. A recorded source (a file, a folder) waits
instead, so none of its frames is lost."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from drivers.camera.source import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)


class CameraReader:
    def __init__(
        self,
        source: Callable[[], FrameSource],
        queue_size: int = 2,
        stall_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        name: str = "camera",
        block_when_full: bool = False,
        prepare: Callable[[Frame], Frame] | None = None,
    ) -> None:
        # `prepare` runs in this thread on each frame (resizing it for the model), so it overlaps inference
        self.prepare = prepare
        self.make_source, self.name, self.block_when_full = source, name, block_when_full
        self.stall_s, self.backoff_initial_s, self.backoff_max_s = stall_s, backoff_initial_s, backoff_max_s
        self.frames: collections.deque[Frame] = collections.deque(maxlen=queue_size)
        self.ready = threading.Condition()
        self.counts = {"frames": 0, "dropped": 0, "reopens": 0, "failures": 0}
        self.state = "stopped"
        self.last_error: str | None = None
        self.last_frame_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.ready:
            self.ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def take(self, timeout: float) -> Frame | None:
        """The oldest waiting frame, waiting up to `timeout`; None if none came or the reader stopped."""
        with self.ready:
            if not self.frames and not self._stop.is_set():
                self.ready.wait(timeout)
            frame = self.frames.popleft() if self.frames else None
            self.ready.notify_all()  # room again, for a reader that waits when full
            return frame

    def status(self) -> dict[str, Any]:
        age = time.monotonic() - self.last_frame_at if self.last_frame_at else None
        return {
            "state": self.state,
            **self.counts,
            "queued": len(self.frames),
            "last_error": self.last_error,
            "last_frame_age_s": None if age is None else round(age, 3),
        }

    def _run(self) -> None:
        delay = self.backoff_initial_s
        while not self._stop.is_set():
            source = self.make_source()
            try:
                self.state = "opening"
                source.open()
                self.state = "streaming"
                self._pump(source)
                delay = self.backoff_initial_s
            except SourceError as exc:
                self.counts["failures"] += 1
                self.last_error = str(exc)
                log.warning("%s: %s; reopening in %.1f s", self.name, exc, delay)
            finally:
                source.close()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max_s)
            self.counts["reopens"] += 1
        self.state = "stopped"

    def _pump(self, source: FrameSource) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                frame = source.read()
            except SourceError as exc:
                # a capture that gave up waiting (FFmpeg's read timeout) after a silence: a stall, not an end
                silent = time.monotonic() - last
                if silent > self.stall_s:
                    raise SourceError(f"{source.uri}: no frame for {silent:.0f} s") from exc
                raise
            now = time.monotonic()
            if frame is None:
                if now - last > self.stall_s:
                    raise SourceError(f"{source.uri}: no frame for {self.stall_s:.0f} s")
                continue
            last = self.last_frame_at = now
            if self.prepare is not None:
                frame = self.prepare(frame)
            with self.ready:
                while (
                    self.block_when_full
                    and len(self.frames) == self.frames.maxlen
                    and not self._stop.is_set()
                ):
                    self.ready.wait(0.5)
                if len(self.frames) == self.frames.maxlen:
                    self.counts["dropped"] += 1  # the deque drops the oldest
                self.frames.append(frame)
                self.counts["frames"] += 1
                self.ready.notify_all()
