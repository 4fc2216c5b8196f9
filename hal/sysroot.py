"""Reading the files that describe the hardware, under a root that is `/` on a device or a fixture tree."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "APPLIANCE_HAL_ROOT"


class SysRoot:
    """Read-only access to /proc, /sys, /dev and /etc below `root`; a missing file is None, not an error."""

    # /proc/cpuinfo of a 256-core server is some 400 KiB; a tree may put /dev/zero or a FIFO in its place
    MAX_BYTES = 1 << 20

    def __init__(self, root: Path | str = "/") -> None:
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def text(self, rel: str) -> str | None:
        """The file's text, or None if it is missing or unreadable (as many /sys files are to non-root); at
        most MAX_BYTES of it, and a FIFO without a writer is empty rather than waited on."""
        try:
            fd = os.open(self.path(rel), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return None
        chunks, got = [], 0
        try:
            while got < self.MAX_BYTES and (chunk := os.read(fd, self.MAX_BYTES - got)):
                chunks.append(chunk)
                got += len(chunk)
        except OSError:  # a directory, a FIFO with nothing in it, a sysfs attribute that refuses
            if not chunks:
                return None
        finally:
            os.close(fd)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def value(self, rel: str) -> str | None:
        """A one-value file (sysfs attribute, device-tree string) without trailing NULs and whitespace."""
        text = self.text(rel)
        return None if text is None else text.rstrip("\x00").strip()

    def strings(self, rel: str) -> list[str]:
        """A device-tree string list: NUL-separated values."""
        text = self.text(rel)
        return [] if text is None else [s for s in text.split("\x00") if s]

    def glob(self, pattern: str) -> list[str]:
        """Paths (relative to the root, with a leading /) matching `pattern`, sorted."""
        return sorted("/" + str(p.relative_to(self.root)) for p in self.root.glob(pattern.lstrip("/")))


def default_root() -> SysRoot:
    """`/`, or the tree $APPLIANCE_HAL_ROOT names: a whole process (`appliance safety` in a test) can then
    be run against a fixture board. Only the HAL reads it, where it is not handed a root explicitly."""
    return SysRoot(os.environ.get(ROOT_ENV) or "/")
