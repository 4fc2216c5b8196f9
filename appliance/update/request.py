"""`appliance update --from-request --data-dir DATA`: as root, install what the page uploaded.

The runtime is another user, so nothing it wrote is trusted beyond the bundle's signature: the request
only says an upload is there (its name is fixed, never taken from the request); the upload must be a
regular file of the size the request gives, opened without following links, and is moved into the
root-owned state directory (and made root's) before RAUC reads it, so no path the runtime controls is
handed to RAUC. The request is removed first, whatever happens next, so the path unit that started us is
not triggered again by the same request.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from appliance.update.installer import Tools, install, reboot_into_trial
from appliance.update.state import FAILED, Unreadable, read_json
from appliance.update.upload import FOLDER, REQUEST, UPLOAD

TAKEN = "bundle.raucb"  # in the state directory, while RAUC installs it


class NotTaken(Exception):
    """The upload cannot be installed: the message says why."""


def from_request(tools: Tools, data_dir: Path, reboot: bool) -> int:
    folder = data_dir / FOLDER
    try:
        request = read_json(folder / REQUEST)
    except Unreadable as exc:
        request = {"error": str(exc)}
    if request is None:
        tools.say(f"no update request in {folder}: nothing to install")
        return 0
    with contextlib.suppress(FileNotFoundError):
        (folder / REQUEST).unlink()
    taken = tools.state.path / TAKEN
    try:
        size = _size(request)
        tools.say(f"taking the uploaded bundle ({size} bytes, sha256 {request.get('sha256')})")
        tools.state.path.mkdir(mode=0o755, parents=True, exist_ok=True)
        _take(folder / UPLOAD, taken, size)
    except NotTaken as exc:
        tools.state.record_outcome(FAILED, f"failed: {exc}", reason=str(exc), bundle="upload")
        print(f"appliance update: {exc}", file=sys.stderr)
        return 1
    try:
        shown = f"uploaded bundle (sha256 {str(request.get('sha256'))[:12]}...)"
        code = install(tools, taken, reboot=False, shown_as=shown)
    finally:
        with contextlib.suppress(FileNotFoundError):
            taken.unlink()
    return reboot_into_trial(tools) if code == 0 and reboot else code


def _size(request: dict[str, Any]) -> int:
    if "error" in request:
        raise NotTaken(f"the upload's request cannot be read: {request['error']}")
    size = request.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise NotTaken(f"the upload's request gives no size: {str(request)[:200]}")
    return size


def _take(upload: Path, taken: Path, size: int) -> None:
    """Move `upload` to `taken`, checked and made root's; NotTaken if it is not a complete regular file."""
    try:
        fd = os.open(upload, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotTaken(f"the upload is gone: {upload}") from None
    except OSError as exc:
        raise NotTaken(f"{upload}: {exc.strerror or exc} (not a regular file?)") from None
    try:
        seen = os.fstat(fd)
        if not stat.S_ISREG(seen.st_mode):
            raise NotTaken(f"{upload}: not a regular file")
        if seen.st_size != size:
            raise NotTaken(f"{upload}: {seen.st_size} bytes, but the request says {size}")
        try:
            os.rename(upload, taken)
            moved = os.lstat(taken)
            if (moved.st_dev, moved.st_ino) != (seen.st_dev, seen.st_ino):
                raise NotTaken(f"{upload} changed while it was taken")
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o600)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise NotTaken(f"cannot move {upload} to {taken}: {exc.strerror or exc}") from None
            _copy(fd, taken, size)  # another file system: copy what we opened
            with contextlib.suppress(OSError):
                upload.unlink()
    finally:
        os.close(fd)


def _copy(fd: int, taken: Path, size: int) -> None:
    out = os.open(taken, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(os.dup(fd), "rb") as source, os.fdopen(out, "wb") as sink:
        source.seek(0)
        shutil.copyfileobj(source, sink, 1 << 20)
        sink.flush()
        os.fsync(sink.fileno())
        if sink.tell() != size:
            raise NotTaken(f"copied {sink.tell()} of {size} bytes")
