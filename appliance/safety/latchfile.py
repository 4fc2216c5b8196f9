"""What the supervisor keeps on disk so a restart never starts the line unlatched by mistake.

Two files, and the rule that nothing missing or unreadable reads as "all clear":
- the latch (`DATA/safety-latch.json`): written when a trip latches (temporary file, fsync, rename, fsync
  of the folder), deleted by an accepted reset. Present and readable: start latched with its reason.
  Present but unreadable (damaged, a directory, an I/O error): start latched all the same.
- the run marker (`SOCKET.pid`): written at start and locked (flock) while the supervisor runs, removed by
  a clean stop only when the latch on disk says what the line is. Found unlocked at a start: the last
  supervisor ended uncleanly, so start latched. Locked: another supervisor runs; refuse to start.

Writing may fail (a full or read-only card, a folder that vanished); the supervisor then stays latched in
memory, reports it, and retries (supervisor.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """All of `data` in `path` or nothing: a temporary file, fsync'd, renamed over it, the rename fsync'd."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def describe(exc: OSError) -> str:
    """`ENOSPC No space left on device: /data/safety-latch.json.tmp`: the code an admin searches for."""
    code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return f"{code} {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


class LatchFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def restore(self) -> str | None:
        """The reason to start latched, or None when nothing was latched."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"the latch file could not be read ({describe(exc)}); latched to be safe"
        try:
            reason = json.loads(text)["reason"]
        except (ValueError, KeyError, TypeError):
            return f"the latch file {self.path} is damaged; latched to be safe"
        return str(reason) or "latched before a restart"

    def write(self, record: dict[str, Any]) -> None:
        """Record a latched trip durably; OSError if the storage refuses."""
        _write_durably(self.path, json.dumps(record).encode())

    def clear(self) -> None:
        """Forget the latch after an accepted reset; OSError if the storage refuses (a restart then starts
        latched, which is safe)."""
        self.path.unlink(missing_ok=True)
        _fsync_folder(self.path.parent)


class RunMarker:
    """SOCKET.pid, locked while this supervisor runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: int | None = None

    def previous(self) -> str | None:
        """Why to start latched (the last supervisor ended uncleanly), or None; RuntimeError if a live
        supervisor holds the marker."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"the supervisor's run marker could not be read ({describe(exc)}); latched to be safe"
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(
                    f"a supervisor (pid {self._pid(fd)}) already owns {self.path.with_suffix('')}"
                ) from None
            return f"the supervisor restarted after an unclean exit (pid {self._pid(fd)})"
        finally:
            os.close(fd)

    def claim(self) -> str | None:
        """Write our pid and hold the lock; the error text if the marker could not be written (the caller
        then starts latched: a later unclean end could not be told from a first start)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            return describe(exc)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = self._pid(fd)
            os.close(fd)
            raise RuntimeError(f"a supervisor (pid {pid}) already owns {self.path.with_suffix('')}") from None
        self._lock = fd  # held read-only: an open writable file would keep the card from going read-only
        try:
            with open(self.path, "w") as f:
                f.write(f"{os.getpid()}\n")
                f.flush()
                os.fsync(f.fileno())
            _fsync_folder(self.path.parent)
        except OSError as exc:
            return describe(exc)
        return None

    def release(self) -> None:
        """A clean stop: the marker goes, so the next start reads the latch alone."""
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.close()

    def close(self) -> None:
        """Let go of the lock and leave the marker: the next start reads it as an unclean end."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    @staticmethod
    def _pid(fd: int) -> str:
        try:
            return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        except OSError:
            return "unknown"
