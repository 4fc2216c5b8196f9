"""Frame sources: one interface over OpenCV captures (V4L2 devices, GStreamer pipelines, RTSP/HTTP streams,
video files) and folders of images. Every frame comes out as BGR uint8 with a timestamp and a counter."""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class SourceKind(enum.StrEnum):
    V4L2 = "v4l2"  # /dev/videoN or an index: USB and CSI cameras through the kernel
    GSTREAMER = "gstreamer"  # a pipeline ending in appsink: libcamera on a Pi, nvarguscamerasrc on a Jetson
    STREAM = "stream"  # rtsp://, http(s):// MJPEG, anything FFmpeg opens
    FILE = "file"  # a video file, looped or played once
    DIRECTORY = "directory"  # a folder of images, in name order


class SourceError(RuntimeError):
    """The source cannot be opened or has ended; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Frame:
    image: npt.NDArray[np.uint8]  # H x W x 3, BGR
    ts: float  # wall-clock time the frame was taken from the source
    index: int
    prepared: npt.NDArray[np.uint8] | None = None  # made by the reader's `prepare` hook (resized for a model)
    # when it was taken, on CLOCK_MONOTONIC: what a trip on this frame counts its latency from
    received_ns: int = field(default_factory=time.monotonic_ns)


class FrameSource(abc.ABC):
    """Open, read frames, close. `read()` returns None when no frame came in time (the reader decides
    whether that is a stall) and raises SourceError when the source is gone or has ended."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.count = 0

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> Frame | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def _frame(self, image: npt.NDArray[Any]) -> Frame:
        received_ns = time.monotonic_ns()  # before any conversion: the frame is in memory now
        if image.dtype != np.uint8:  # 16-bit PNGs, float TIFFs: scale to 8 bits
            low, high = float(image.min()), float(image.max())
            image = ((image - low) * (255.0 / max(high - low, 1e-12))).astype(np.uint8)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        self.count += 1
        return Frame(image, time.time(), self.count, received_ns=received_ns)


class CaptureSource(FrameSource):
    """Anything OpenCV's VideoCapture opens."""

    _BACKENDS = {
        SourceKind.V4L2: cv2.CAP_V4L2,
        SourceKind.GSTREAMER: cv2.CAP_GSTREAMER,
        SourceKind.STREAM: cv2.CAP_FFMPEG,
        SourceKind.FILE: cv2.CAP_FFMPEG,
    }

    def __init__(
        self, kind: SourceKind, uri: str, loop: bool = True, width: int = 0, height: int = 0
    ) -> None:
        super().__init__(uri)
        self.kind, self.loop, self.width, self.height = kind, loop, width, height
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        if (
            self.kind is SourceKind.GSTREAMER
            and "GStreamer:                   YES" not in cv2.getBuildInformation()
        ):
            raise SourceError(
                "this OpenCV has no GStreamer support (opencv-python-headless never has): install "
                "Debian's python3-opencv to use GStreamer/libcamera pipelines"
            )
        if self.kind is SourceKind.FILE and not Path(self.uri).is_file():
            raise SourceError(f"{self.uri}: no such video file")
        target: str | int = int(self.uri) if self.kind is SourceKind.V4L2 and self.uri.isdigit() else self.uri
        # bounded open and read for network streams: a dead camera must not hang the reader for a minute
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        capture = cv2.VideoCapture(target, self._BACKENDS[self.kind], params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.kind} {self.uri}: cannot open")
        if self.width and self.height:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self._capture = capture

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError(f"{self.uri}: not open")
        ok, image = self._capture.read()
        if ok and image is not None:
            return self._frame(image)
        if self.kind is SourceKind.FILE:
            if not self.loop:
                raise SourceError(f"{self.uri}: end of file")
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
            if ok and image is not None:
                return self._frame(image)
        raise SourceError(f"{self.kind} {self.uri}: no frame (stream ended or device gone)")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class DirectorySource(FrameSource):
    """The images of a folder in name order, at `fps`, looped or once."""

    def __init__(self, uri: str, fps: float = 10.0, loop: bool = True) -> None:
        super().__init__(uri)
        self.fps, self.loop = fps, loop
        self._files: Iterator[Path] = iter(())
        self._next_at = 0.0

    def open(self) -> None:
        folder = Path(self.uri)
        if not folder.is_dir():
            raise SourceError(f"{self.uri}: not a directory")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"{self.uri}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self._all = files
        self._files = iter(files)
        self._next_at = time.monotonic()

    def read(self) -> Frame | None:
        delay = self._next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next_at = max(self._next_at + 1 / self.fps, time.monotonic() - 1 / self.fps)
        path = next(self._files, None)
        if path is None:
            if not self.loop:
                raise SourceError(f"{self.uri}: all images read")
            self._files = iter(self._all)
            path = next(self._files)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{path}: not an image OpenCV can read")
        return self._frame(image)

    def close(self) -> None:
        self._files = iter(())


def open_source(
    kind: SourceKind, uri: str, *, fps: float = 10.0, loop: bool = True, width: int = 0, height: int = 0
) -> FrameSource:
    """A source for `kind` (not yet opened)."""
    if kind is SourceKind.DIRECTORY:
        return DirectorySource(uri, fps, loop)
    return CaptureSource(kind, uri, loop, width, height)
