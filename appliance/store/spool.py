"""The journal: records committed but not yet in the database, in a file that is never synced.

A commit appends one frame to the journal with a plain write(): once it returns, the records are in the
kernel's page cache (or the RAM file system the journal is kept in, aside.py) and survive the process
being killed; the next start puts them into the database. A power cut or a reboot loses them. Every
flush writes them into the database, empties the file and starts a new generation of the journal in the
other of two files. Two, for a journal kept on the disk: an emptied file's pages are dropped before the
kernel writes them back, but the kernel writes back a file that has been dirty longer than its expiry
(30 s, vm.dirty_expire_centisecs) counted from when it was first dirtied, and a file emptied and written
again at once stays dirty from its first write on. Each file is written for one flush interval and left
alone (the kernel's flusher finds it clean) for the next.

A file: an 8-byte header (magic, then the generation, big-endian), then frames of a 4-byte length, the
CRC-32 of the generation and the payload, and the payload (marshal, of plain tuples). A torn or stale
frame ends the file; the database's `spool_applied` says which generation it already holds.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"EAJ1"
HEADER = struct.Struct(">4sI")
FRAME = struct.Struct(">II")


class Spool:
    def __init__(self, folder: Path) -> None:
        self.paths = (folder / "spool0", folder / "spool1")
        self.generation = 0
        self._fd: int | None = None

    def recover(self, applied: int) -> Iterator[tuple[int, Any]]:
        """(generation, payload) of every intact frame newer than `applied`, oldest generation first."""
        found = sorted(g for g in (self._read(path) for path in self.paths) if g is not None)
        for generation, frames in found:
            if generation > applied:
                for payload in frames:
                    yield generation, payload
        self.generation = max([applied, *(g for g, _ in found)])

    def start(self) -> None:
        """Begin the next generation, in the file the last one did not use; the last one's records are in
        the database: its file is emptied."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        self.close()
        self.generation += 1
        fd = os.open(self.paths[self.generation % 2], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, HEADER.pack(MAGIC, self.generation))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def append(self, payload: Any) -> None:
        """One frame; OSError if the file system refused it (then nothing of it counts)."""
        if self._fd is None:
            raise OSError("the journal is not open")
        data = marshal.dumps(payload)
        crc = zlib.crc32(data, zlib.crc32(self.generation.to_bytes(4, "big")))
        frame = FRAME.pack(len(data), crc) + data
        at = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            if os.write(self._fd, frame) != len(frame):
                raise OSError("short write to the journal")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, at)  # no half frame left for the next one to follow
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Everything is in the database: no journal is left behind."""
        self.close()
        for path in self.paths:
            path.unlink(missing_ok=True)

    def _read(self, path: Path) -> tuple[int, list[Any]] | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) < HEADER.size:
            return None
        magic, generation = HEADER.unpack_from(data)
        if magic != MAGIC:
            log.warning("store journal %s is not a journal: ignored", path)
            return None
        frames, at, seed = [], HEADER.size, zlib.crc32(generation.to_bytes(4, "big"))
        while at + FRAME.size <= len(data):
            size, crc = FRAME.unpack_from(data, at)
            body = data[at + FRAME.size : at + FRAME.size + size]
            if len(body) != size or zlib.crc32(body, seed) != crc:
                break  # torn by a power cut: the frames before it stand
            try:
                frames.append(marshal.loads(body))
            except (EOFError, ValueError, TypeError):
                break
            at += FRAME.size + size
        return generation, frames
