"""What every stage knows: the board, where things go, the version and the build's clock."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from builder.boards import Board

IMAGE_DIR = Path(__file__).resolve().parent.parent  # image/
REPO = IMAGE_DIR.parent


@dataclass(frozen=True)
class Build:
    board: Board
    out: Path
    mirror: str
    keys: Path  # the signing PKI (docs/image.md): ca.cert.pem, signing.cert.pem, signing.key.pem
    version: str
    epoch: int  # SOURCE_DATE_EPOCH: the last commit's time, so two builds of one commit agree
    compression: str = "xz"  # of the root's squashfs: xz is smallest; gzip builds in a fifth of the time

    @property
    def rootfs(self) -> Path:
        return self.out / "rootfs"

    @property
    def work(self) -> Path:
        return self.out / "work"

    @property
    def env(self) -> dict[str, str]:
        return {"SOURCE_DATE_EPOCH": str(self.epoch), "LC_ALL": "C.UTF-8", "TZ": "UTC"}


def project_version() -> str:
    """The package version and the commit, as PEP 440: 0.1.0+g1a2b3c4 (+ .dirty for a changed tree)."""
    text = (REPO / "pyproject.toml").read_text()
    version = next(line.split('"')[1] for line in text.splitlines() if line.startswith("version ="))
    commit = _git("rev-parse", "--short=7", "HEAD") or "unknown"
    dirty = ".dirty" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{version}+g{commit}{dirty}"


def commit_epoch() -> int:
    return int(_git("log", "-1", "--format=%ct") or 0)


def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""
