"""Evidence of rejects: the frame and a thumbnail of every reject, kept on disk under a byte budget, the
oldest deleted first. Written by a thread of its own so the inference thread never waits on the disk. Only
files it wrote are counted and deleted (appliance/qc/evidence_files.py)."""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from appliance.qc.evidence_files import kept_evidence, private_folder
from appliance.status.qc import EvidenceStatus

log = logging.getLogger(__name__)


class EvidenceStore:
    def __init__(self, folder: Path, budget_bytes: int, thumbnail_px: int = 160, quality: int = 90) -> None:
        self.folder, self.budget, self.thumbnail_px, self.quality = (
            folder,
            budget_bytes,
            thumbnail_px,
            quality,
        )
        self.counts = {"saved": 0, "deleted": 0, "dropped": 0, "errors": 0}
        self._files: collections.deque[tuple[Path, int]] = collections.deque()  # oldest first
        self.bytes = 0
        self._queue: queue.Queue[tuple[str, npt.NDArray[np.uint8]] | None] = queue.Queue(maxsize=16)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        private_folder(self.folder)
        for path, size in kept_evidence(self.folder):  # what earlier runs kept, and nothing else
            self._files.append((path, size))
            self.bytes += size
        self._thread = threading.Thread(target=self._run, name="evidence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def save(self, name: str, frame: npt.NDArray[np.uint8]) -> str:
        """Queue a reject's frame; returns the thumbnail's file name. Never blocks: when the writer is
        behind, the frame is dropped and counted."""
        try:
            self._queue.put_nowait((name, frame))
        except queue.Full:
            self.counts["dropped"] += 1
        return f"{name}.thumb.jpg"

    def status(self) -> EvidenceStatus:
        return EvidenceStatus(
            **self.counts, bytes=self.bytes, budget_bytes=self.budget, files=len(self._files)
        )

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            name, frame = item
            try:
                self._write(name, frame)
            except (OSError, cv2.error) as exc:
                self.counts["errors"] += 1
                log.error("evidence %s not written: %s", name, exc)

    def _write(self, name: str, frame: npt.NDArray[np.uint8]) -> None:
        height, width = frame.shape[:2]
        scale = self.thumbnail_px / max(height, width)
        thumb = cv2.resize(
            frame, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
        for path, image in ((self.folder / f"{name}.jpg", frame), (self.folder / f"{name}.thumb.jpg", thumb)):
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise OSError(f"{path.name}: JPEG encoding failed")
            partial = path.with_name(f".{path.name}.part")  # whole files only: sync reads them any time
            # the frames show the line and its people: private whatever the umask, never through a link
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data.tobytes())
            partial.replace(path)
            self._files.append((path, len(data)))
            self.bytes += len(data)
        self.counts["saved"] += 1
        while self.bytes > self.budget and len(self._files) > 2:
            old, size = self._files.popleft()
            old.unlink(missing_ok=True)
            self.bytes -= size
            self.counts["deleted"] += 1
