"""Which files are evidence: the ones the evidence store wrote, and nothing else in its folder. A name the
store gives (`evidence_name` + ".jpg" or ".thumb.jpg"), a regular file (never a link, followed or not),
owned by the user the appliance runs as. The page serves only those, and the store counts and deletes
only those, so a folder pointed at a directory with other files, or a link planted in it, costs nothing
(docs/qc.md, Evidence). Light on purpose: the web server imports it, not OpenCV."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

from appliance.records import is_file_name

# evidence_name: UTC time to the millisecond, the label, the frame number
EVIDENCE_FILE = re.compile(r"\d{8}T\d{6}\.\d{3}_.+_\d+(\.thumb)?\.jpg")
MAX_EVIDENCE_BYTES = 64 << 20  # far above any frame the store writes; a file beyond is not served


def evidence_name(label: str, frame: int, ts: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(ts)) + f"{ts % 1:.3f}"[1:] + f"_{label}_{frame}"


def is_evidence_name(name: str) -> bool:
    return is_file_name(name) and EVIDENCE_FILE.fullmatch(name) is not None


def is_ours(seen: os.stat_result) -> bool:
    """A regular file of the user the appliance runs as (an lstat or fstat result: a link is not)."""
    return stat.S_ISREG(seen.st_mode) and seen.st_uid == os.geteuid()


def read_evidence(folder: Path, name: str) -> bytes | None:
    """The content of evidence file `name` in `folder`, or None if it is not evidence the store wrote
    (opened without following a link, and without waiting on a FIFO; checked on the open file)."""
    return read_own_file(folder / name) if is_evidence_name(name) else None


def read_own_file(path: Path) -> bytes | None:
    """The content of `path` if it is a regular file of ours (not a link, not over MAX_EVIDENCE_BYTES),
    else None: missing, a link (ELOOP), a FIFO (never waited on), another user's."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        seen = os.fstat(fd)
        if not is_ours(seen) or seen.st_size > MAX_EVIDENCE_BYTES:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def kept_evidence(folder: Path) -> list[tuple[Path, int]]:
    """The evidence an earlier run left in `folder`, oldest first, with sizes; all else is left out."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_evidence_name(entry.name):
                continue
            seen = entry.stat(follow_symlinks=False)
            if is_ours(seen):
                found.append((seen.st_mtime, Path(entry.path), seen.st_size))
    return [(path, size) for _, path, size in sorted(found)]


def private_folder(folder: Path) -> None:
    """`folder`, made if missing (mode 0700), checked to be a directory of ours and not a link, and made
    private if it is not (OSError saying what is wrong)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        what = "a link" if folder.is_symlink() else f"not a directory we can open ({exc.strerror})"
        message = f"evidence folder {folder} is {what}: give a folder's real path (qc.evidence.dir)"
        raise OSError(message) from None
    try:
        seen = os.fstat(fd)
        if seen.st_uid != os.geteuid():
            raise OSError(f"evidence folder {folder} belongs to uid {seen.st_uid}, not to this user")
        if stat.S_IMODE(seen.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
