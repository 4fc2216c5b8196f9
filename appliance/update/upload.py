"""The runtime's part in an update (unprivileged: it never calls RAUC): receive an uploaded bundle into
DATA/update/upload.raucb, ask root's updater for the install with DATA/update/request, and read what the
updater records in the state directory for `GET /api/v1/update` (docs/updates.md).

An upload is streamed to a temporary file beside its place, counted and hashed on the way, never held in
memory; only a complete one is renamed into place, and only then is the request written. The image's
path unit sees the request and runs `appliance update --from-request` as root.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from appliance.update.state import (
    OUTCOME,
    PROGRESS,
    SLOTS,
    TRIAL,
    StateDir,
    Unreadable,
    boot_id,
    default_state_dir,
    fsync_folder,
    read_json,
    write_json,
)

log = logging.getLogger(__name__)

FOLDER = "update"  # in the data directory
UPLOAD = "upload.raucb"
REQUEST = "request"
MAX_MB_ENV = "APPLIANCE_UPDATE_MAX_MB"
DEFAULT_MAX_MB = 2000.0
# Left free on the data partition by an upload: the store and the stop output's latch live there too.
RESERVE_BYTES = 100_000_000


class Refused(Exception):
    """An upload refused: the HTTP status and what to tell the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def max_upload_bytes(environ: Mapping[str, str] = os.environ) -> int:
    """The upload cap from APPLIANCE_UPDATE_MAX_MB (megabytes, 10^6 bytes); ValueError saying what's wrong."""
    raw = environ.get(MAX_MB_ENV, "").strip()
    if not raw:
        return int(DEFAULT_MAX_MB * 1e6)
    try:
        megabytes = float(raw)
    except ValueError:
        raise ValueError(f"{MAX_MB_ENV}={raw!r}: not a number of megabytes") from None
    if not 0 < megabytes <= 1e6:
        raise ValueError(f"{MAX_MB_ENV}={raw!r}: expected more than 0 and at most 1000000 (MB)")
    return int(megabytes * 1e6)


def installing(progress: dict[str, Any] | None) -> bool:
    """Whether the install that progress.json describes is still at work: same boot, its process alive."""
    if not progress or progress.get("state") != "installing" or progress.get("boot_id") != boot_id():
        return False
    pid = progress.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # root's process, alive
        return True
    return True


class UpdateArea:
    """DATA/update/ and a view of the state directory, for the web routes."""

    def __init__(self, data_dir: Path, state_dir: Path, max_bytes: int, problem: str | None = None) -> None:
        self.folder = data_dir / FOLDER
        self.state = StateDir(state_dir)
        self.max_bytes = max_bytes
        self.problem = problem  # a setting that cannot be used: uploads are refused, saying so
        self.receiving: dict[str, Any] | None = None

    @classmethod
    def from_environment(cls, data_dir: Path) -> UpdateArea:
        """As the box runs it: the state directory and the cap from the environment (docs/updates.md)."""
        try:
            return cls(data_dir, default_state_dir(), max_upload_bytes())
        except ValueError as exc:
            log.error("updates through the page are off: %s", exc)
            return cls(data_dir, default_state_dir(), int(DEFAULT_MAX_MB * 1e6), str(exc))

    def why_not(self) -> str | None:
        """Why this box takes no update through the page, or None when it does."""
        if self.problem is not None:
            return self.problem
        if not self.state.path.is_dir():
            return (
                f"no updater on this box: {self.state.path} does not exist "
                "(updates need the firmware image; docs/updates.md)"
            )
        return None

    def status(self) -> dict[str, Any]:
        """GET /api/v1/update: what the updater recorded, and the upload or install under way."""
        progress = self.state.read_or_note(PROGRESS)
        if progress is not None and "state" in progress:
            progress["running"] = installing(progress)
        return {
            "available": self.why_not() is None,
            "why_not": self.why_not(),
            "max_upload_bytes": self.max_bytes,
            "receiving": dict(self.receiving) if self.receiving else None,
            "request": self._request(),
            "progress": progress,
            "outcome": self.state.read_or_note(OUTCOME),
            "trial": self.state.read_or_note(TRIAL),
            "slots": self.state.read_or_note(SLOTS),
        }

    def _request(self) -> dict[str, Any] | None:
        try:
            return read_json(self.folder / REQUEST)
        except Unreadable as exc:
            return {"error": str(exc)}

    def check(self, declared: str | None) -> int:
        """The upload's size from its Content-Length, or Refused before a byte of the body is read."""
        if (why := self.why_not()) is not None:
            raise Refused(503 if self.problem else 404, why)
        if declared is None or not declared.strip().isdigit():
            raise Refused(411, "send the bundle as the body with a Content-Length (curl --data-binary @FILE)")
        size = int(declared)
        if size == 0:
            raise Refused(400, "the body is empty: send the bundle (a .raucb file)")
        if size > self.max_bytes:
            raise Refused(
                413, f"{size} bytes is more than this box takes ({self.max_bytes} bytes, {MAX_MB_ENV})"
            )
        if (self.folder / REQUEST).exists():
            raise Refused(409, "an uploaded bundle is waiting for the updater; wait for its install")
        if installing(self.state.read_or_note(PROGRESS)):
            raise Refused(409, "an update is being installed now; wait for it")
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        free = shutil.disk_usage(self.folder).free
        if free - size < RESERVE_BYTES:
            raise Refused(
                507,
                f"{size} bytes would leave {max(free - size, 0)} bytes free on the data partition; "
                f"it keeps at least {RESERVE_BYTES} free (the store and the stop output's latch live there)",
            )
        return size

    async def receive(self, declared: str | None, body: AsyncIterator[bytes], client: str) -> dict[str, Any]:
        """Check the upload by its Content-Length (Refused), stream it into place, then ask for the install;
        the request's record. One at a time: the slot is taken before anything else is awaited."""
        if self.receiving is not None:
            raise Refused(409, "another upload is being received; wait for it")
        self.receiving = {"received": 0, "size": None, "started": time.time()}
        try:
            size = await asyncio.to_thread(self.check, declared)
            self.receiving["size"] = size
            return await self._receive(body, size, client)
        finally:
            self.receiving = None

    async def _receive(self, body: AsyncIterator[bytes], size: int, client: str) -> dict[str, Any]:
        assert self.receiving is not None
        fd, name = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".part")  # mode 0600
        part = Path(name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as sink:
                received = 0
                async for chunk in body:
                    received += len(chunk)
                    if received > size:
                        raise Refused(400, f"the body is longer than its Content-Length ({size} bytes)")
                    await asyncio.to_thread(_write, sink, digest, chunk)
                    self.receiving["received"] = received
                if received != size:
                    raise Refused(400, f"the upload ended after {received} of {size} bytes")
                await asyncio.to_thread(_flush, sink)
            os.replace(part, self.folder / UPLOAD)
            await asyncio.to_thread(fsync_folder, self.folder)
            request = {
                "file": UPLOAD,
                "size": size,
                "sha256": digest.hexdigest(),
                "received": time.time(),
                "client": client,
            }
            await asyncio.to_thread(write_json, self.folder / REQUEST, request, 0o600)
            log.info(
                "update bundle received (%d bytes, sha256 %s); asked the updater", size, request["sha256"]
            )
            return request
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()  # noqa: ASYNC240  # one unlink; in a thread it might not run at a cancel


def _write(sink: BinaryIO, digest: Any, chunk: bytes) -> None:
    sink.write(chunk)
    digest.update(chunk)


def _flush(sink: BinaryIO) -> None:
    sink.flush()
    os.fsync(sink.fileno())
