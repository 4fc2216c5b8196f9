"""Reading the files that describe the hardware, under a root that is `/` on a device or a fixture tree."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "APPLIANCE_HAL_ROOT"


class SysRoot:
    """Read-only access to /proc, /sys, /dev and /etc below `root`; a missing file is None, not an error."""

    def __init__(self, root: Path | str = "/") -> None:
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def text(self, rel: str) -> str | None:
        """The file's text, or None if it is missing or unreadable (as many /sys files are to non-root)."""
        try:
            return self.path(rel).read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return None

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
