"""Frame sources on real files (a video written with OpenCV, a folder of images) and the reader's queue,
drop counting and reopening."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera import CameraReader, SourceError, SourceKind, open_source
from drivers.camera.source import Frame, FrameSource


def video(path: Path, frames: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(frames):
        writer.write(np.full((120, 160, 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_a_video_file_plays_once_or_loops(tmp_path: Path) -> None:
    path = video(tmp_path / "clip.avi")
    once = open_source(SourceKind.FILE, str(path), loop=False)
    once.open()
    frames = [once.read() for _ in range(5)]
    assert all(f is not None and f.image.shape == (120, 160, 3) for f in frames)
    with pytest.raises(SourceError, match="end of file"):
        once.read()
    once.close()
    looped = open_source(SourceKind.FILE, str(path), loop=True)
    looped.open()
    assert [f.index for f in (looped.read() for _ in range(12)) if f is not None] == list(range(1, 13))
    looped.close()


def test_sources_that_cannot_open_say_why(tmp_path: Path) -> None:
    cases = [
        (SourceKind.FILE, str(tmp_path / "none.avi"), "no such video file"),
        (SourceKind.DIRECTORY, str(tmp_path / "none"), "not a directory"),
        (SourceKind.DIRECTORY, str(tmp_path), "no images"),
        (SourceKind.GSTREAMER, "videotestsrc ! appsink", "no GStreamer support"),
    ]
    for kind, uri, message in cases:
        with pytest.raises(SourceError, match=message):
            open_source(kind, uri).open()


def test_a_folder_of_images_in_name_order(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((10, 10), 100 * i, np.uint8))  # gray: becomes BGR
    source = open_source(SourceKind.DIRECTORY, str(tmp_path), fps=1000, loop=False)
    source.open()
    values = [int(f.image[0, 0, 0]) for f in (source.read() for _ in range(3)) if f is not None]
    assert values == [0, 100, 200]
    with pytest.raises(SourceError, match="all images read"):
        source.read()


class Flaky(FrameSource):
    """Fails after a few frames, like a camera that is unplugged."""

    opened = 0

    def open(self) -> None:
        Flaky.opened += 1

    def read(self) -> Frame | None:
        if self.count >= 3:
            raise SourceError("unplugged")
        return self._frame(np.zeros((4, 4, 3), np.uint8))

    def close(self) -> None:
        return None


def test_the_reader_drops_the_oldest_and_reopens_a_failing_source() -> None:
    reader = CameraReader(lambda: Flaky("flaky"), queue_size=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    reader.start()
    deadline = time.monotonic() + 5
    while reader.counts["reopens"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    reader.stop()
    status = reader.status()
    assert status["reopens"] >= 3 and status["failures"] >= 3 and Flaky.opened >= 3
    assert status["dropped"] == status["frames"] - 2  # nobody took frames: all but the newest two dropped
    assert status["last_error"] == "unplugged"


class Hung(FrameSource):
    """Two frames, then silence: each read waits `timeout_s` and gives up with an error, as FFmpeg's read
    timeout does on a network camera that froze with its connection open."""

    def __init__(self, uri: str, timeout_s: float) -> None:
        super().__init__(uri)
        self.timeout_s = timeout_s

    def open(self) -> None:
        self.count = 0

    def read(self) -> Frame | None:
        if self.count < 2:
            return self._frame(np.zeros((4, 4, 3), np.uint8))
        time.sleep(self.timeout_s)
        raise SourceError(f"stream {self.uri}: no frame (stream ended or device gone)")

    def close(self) -> None:
        return None


def test_a_source_that_gives_up_after_a_silence_is_reported_as_a_stall() -> None:
    reader = CameraReader(lambda: Hung("http://cam/stream.mjpg", 0.3), stall_s=0.2, backoff_initial_s=5.0)
    reader.start()
    deadline = time.monotonic() + 5
    while reader.counts["failures"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    status = reader.status()
    reader.stop()
    assert status["failures"] == 1 and status["frames"] == 2
    # the reason names the stall, not the capture's guess that the stream ended
    assert re.fullmatch(r"http://cam/stream\.mjpg: no frame for \d+ s", status["last_error"] or ""), status
