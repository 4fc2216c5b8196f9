"""The update state directory: what root's updater records, for itself at the next boot and for the
unprivileged runtime to show (docs/updates.md, "The state directory").

On a box it is /var/lib/appliance-update (root's, mode 0755, on the data partition, so it survives the
switch of root slot). Every file is JSON, mode 0644 whatever the umask, replaced atomically (temporary
file, fsync, rename, fsync of the folder):

- `trial.json`: an update installed and not yet committed: the slot it went to, its version, the slot
  it came from, when, and the boot it was installed in;
- `outcome.json`: the last update's outcome: `installed`, `committed`, `rolled back` or `failed`;
- `progress.json`: the install running now, or the last one;
- `slots.json`: the slots as RAUC last reported them;
- `health.json`: the last health check's result, when `appliance health --save` writes it here.

`install.lock` is held (flock) while an updater works, so two never run at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATE_DIR_ENV = "APPLIANCE_UPDATE_STATE_DIR"
DEFAULT_STATE_DIR = Path("/var/lib/appliance-update")
BOOT_ID_ENV = "APPLIANCE_BOOT_ID_FILE"  # tests stand in for the kernel's boot id with a file of their own
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")

TRIAL = "trial.json"
OUTCOME = "outcome.json"
PROGRESS = "progress.json"
SLOTS = "slots.json"
HEALTH = "health.json"
LOCK = "install.lock"
MAX_RECORD_BYTES = 1 << 20  # a record larger than this is not one of ours

INSTALLED, COMMITTED, ROLLED_BACK, FAILED = "installed", "committed", "rolled back", "failed"


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def boot_id() -> str | None:
    """This boot's id (a new one at every boot), or None where the kernel does not tell."""
    try:
        return Path(os.environ.get(BOOT_ID_ENV) or BOOT_ID_FILE).read_text().strip() or None
    except OSError:
        return None


class Busy(Exception):
    """Another updater holds the lock."""


class Unreadable(Exception):
    """A record that is there but cannot be used: the message names the file and why."""


def write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    """All of `data` in `path` or nothing, readable as `mode` says whatever the process's umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """The record in `path`, None if there is none; Unreadable if it is there and cannot be used."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"{path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_RECORD_BYTES + 1)
    if len(raw) > MAX_RECORD_BYTES:
        raise Unreadable(f"{path}: larger than {MAX_RECORD_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise Unreadable(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Unreadable(f"{path}: expected a JSON object")
    return data


class StateDir:
    """The directory and its records."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, name: str) -> dict[str, Any] | None:
        return read_json(self.path / name)

    def read_or_note(self, name: str) -> dict[str, Any] | None:
        """For showing: the record, None if there is none, or {"error": why} if it cannot be read."""
        try:
            return self.read(name)
        except Unreadable as exc:
            return {"error": str(exc)}

    def write(self, name: str, data: dict[str, Any]) -> None:
        self.path.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_json(self.path / name, data)

    def clear(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / name).unlink()
        fsync_folder(self.path)

    def record_outcome(self, outcome: str, message: str, **fields: Any) -> dict[str, Any]:
        record = {"outcome": outcome, "message": message, "time": time.time(), **fields}
        self.write(OUTCOME, record)
        return record

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while an updater works; Busy if another one holds it."""
        self.path.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise Busy(f"another `appliance update` is at work (pid {holder})") from None
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock


class Progress:
    """progress.json of one install, rewritten at each step: what the page shows while it runs."""

    def __init__(self, state: StateDir, bundle: str) -> None:
        self.state = state
        self.record: dict[str, Any] = {
            "state": "installing",
            "percent": 0,
            "step": "checking the bundle",
            "bundle": bundle,
            "version": None,
            "pid": os.getpid(),
            "boot_id": boot_id(),
            "started": time.time(),
            "updated": time.time(),
            "error": None,
        }
        self._save()

    def step(self, percent: int, step: str, **fields: Any) -> None:
        self.record.update(percent=percent, step=step, updated=time.time(), **fields)
        self._save()

    def end(self, state: str, error: str | None = None) -> None:
        percent = 100 if state == INSTALLED else self.record["percent"]
        self.record.update(state=state, error=error, percent=percent, updated=time.time())
        self._save()

    def _save(self) -> None:
        self.state.write(PROGRESS, self.record)
