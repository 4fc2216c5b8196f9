"""The camera reader: a thread that takes frames from a source into a bounded queue, and reopens a source
that fails or stalls, with backoff. When the queue is full a live camera's oldest frame is dropped (and
counted): the freshest frame is the one worth inspecting. A recorded source (a file, a folder) waits
instead, so none of its frames is lost."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from drivers.backoff import Backoff
from drivers.camera.source import Frame, FrameSource, SourceError
from drivers.reconnect import LinkState, Reconnector

# what the status page has always called the reader's states
_STATES = {LinkState.STOPPED: "stopped", LinkState.CONNECTING: "opening", LinkState.OPEN: "streaming"}


class CameraReader:
    """One camera: a Reconnector keeps its source open; `take()` hands its frames to the inference."""

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
        self.stall_s = stall_s
        self.frames: collections.deque[Frame] = collections.deque(maxlen=queue_size)
        self.ready = threading.Condition()
        self.frames_read, self.dropped = 0, 0
        self.last_frame_at = 0.0
        self._link = Reconnector(
            f"camera:{name}",
            self._open,
            self._pump,
            lambda source: source.close(),
            Backoff(backoff_initial_s, backoff_max_s),
            expected=(SourceError,),
            wake=self._wake,
        )

    @property
    def state(self) -> str:
        return _STATES[self._link.state]

    @property
    def last_error(self) -> str | None:
        return self._link.last_error

    @property
    def counts(self) -> dict[str, int]:
        return {
            "frames": self.frames_read,
            "dropped": self.dropped,
            "reopens": self._link.retries,
            "failures": self._link.failures,
        }

    def start(self) -> None:
        self._link.start()

    def stop(self) -> None:
        self._link.stop()

    def take(self, timeout: float) -> Frame | None:
        """The oldest waiting frame, waiting up to `timeout`; None if none came or the reader stopped."""
        with self.ready:
            if not self.frames and not self._link.stopping:
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

    def _wake(self) -> None:
        with self.ready:
            self.ready.notify_all()

    def _open(self) -> FrameSource:
        source = self.make_source()
        try:
            source.open()
        except BaseException:
            source.close()
            raise
        return source

    def _pump(self, source: FrameSource) -> None:
        last = time.monotonic()
        while not self._link.stopping:
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
            self._link.worked()
            if self.prepare is not None:
                frame = self.prepare(frame)
            with self.ready:
                while (
                    self.block_when_full
                    and len(self.frames) == self.frames.maxlen
                    and not self._link.stopping
                ):
                    self.ready.wait(0.5)
                if len(self.frames) == self.frames.maxlen:
                    self.dropped += 1  # the deque drops the oldest
                self.frames.append(frame)
                self.frames_read += 1
                self.ready.notify_all()
