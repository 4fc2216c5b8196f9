"""The checkout, its version, and running the host's tools with their output in the build log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[3]
DEB_DIR = REPO / "image/deb"
# Host tool -> the Debian package that has it.
TOOLS = {"dpkg-deb": "dpkg", "git": "git"}
# What the package is made of, for `.dirty`.
SHIPPED = (
    "appliance",
    "hal",
    "drivers",
    "docs",
    "image/systemd",
    "image/config",
    "image/deb",
    "pyproject.toml",
)


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def preflight() -> None:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise BuildError(f"missing host tools; install them with: apt-get install {' '.join(missing)}")
    pip = subprocess.run([*pip_command(), "--version"], capture_output=True, text=True)
    if pip.returncode != 0:
        raise BuildError("this Python has no pip: apt-get install python3-pip, or build with another python3")


def pip_command() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def project_version(shipped: Sequence[str] = SHIPPED) -> str:
    """pyproject.toml's version and the commit, as a PEP 440 local version: 0.1.0+g1a2b3c4, with `.dirty`
    when what the package takes from the checkout differs from the commit (new files included). Debian
    reads it as the same version."""
    version = str(pyproject()["project"]["version"])
    commit = _git("rev-parse", "--short=7", "HEAD") or "unknown"
    dirty = ".dirty" if _git("status", "--porcelain", "--", *shipped) else ""
    return f"{version}+g{commit}{dirty}"


def commit_epoch() -> int:
    """SOURCE_DATE_EPOCH: the commit's time, so that file times in the wheel and the package do not vary."""
    return int(_git("log", "-1", "--format=%ct") or 0)


def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def run(cmd: Sequence[str | Path], log: IO[str], *, env: dict[str, str] | None = None) -> str:
    """Run a command with its output into the log; BuildError with the output's tail if it fails."""
    args = [str(c) for c in cmd]
    log.write(f"$ {' '.join(args)}\n")
    log.flush()
    result = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})})
    log.write(result.stdout + result.stderr)
    log.flush()
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{' '.join(args[:4])} ... failed (exit {result.returncode}):\n{tail}")
    return result.stdout
