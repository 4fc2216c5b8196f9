"""What every stage knows: the board, where things go, the version and the build's clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from debbuild.host import commit_epoch as commit_epoch
from debbuild.host import project_version as checkout_version

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
    security: str | None = None  # the mirror of Debian's security updates (bookworm-security)

    @property
    def rootfs(self) -> Path:
        return self.out / "rootfs"

    @property
    def work(self) -> Path:
        return self.out / "work"

    @property
    def sources(self) -> list[str]:
        """Debian 12 with its point-release updates and security fixes (a box built today has today's
        fixes), and the suite of a board's newer kernel: mmdebstrap's mirror lines."""
        components = "main non-free-firmware"
        lines = [f"deb {self.mirror} {suite} {components}" for suite in ("bookworm", "bookworm-updates")]
        if self.security:
            lines.append(f"deb {self.security} bookworm-security {components}")
        if self.board.kernel_suite != "bookworm":
            lines.append(f"deb {self.mirror} {self.board.kernel_suite} main")
        return lines

    @property
    def env(self) -> dict[str, str]:
        return {"SOURCE_DATE_EPOCH": str(self.epoch), "LC_ALL": "C.UTF-8", "TZ": "UTC"}


def project_version() -> str:
    """0.1.0+g1a2b3c4: pyproject's version and the commit, `.dirty` if what the image takes differs."""
    return checkout_version(("appliance", "hal", "drivers", "docs", "image", "pyproject.toml"))
