"""Stage 60: the manifest: every file with its hash, every package with its version, the units'
`systemd-analyze security` scores, sizes. Two builds of one commit are compared by these files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import IO, Any

from builder.bundle import bundle_name
from builder.context import Build
from builder.host import run
from builder.layout import disk_name

UNITS = ("appliance-safety.service", "appliance.service")


def file_list(root: Path) -> list[str]:
    """`path mode size sha256` (or `-> target` for links) for everything under root, sorted."""
    rows = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if (Path(folder) / d).is_symlink()]):
            path = Path(folder) / name
            info = path.lstat()
            rel = "/" + str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                rows.append(f"{rel}\tlink\t-> {os.readlink(path)}")
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                rows.append(f"{rel}\t{info.st_mode & 0o7777:04o}\t{info.st_size}\t{digest}")
    return rows


def security_scores(b: Build, log: IO[str]) -> dict[str, float]:
    scores = {}
    for unit in UNITS:
        text = run(
            ["systemd-analyze", "security", "--offline=true", f"--root={b.rootfs}", "--no-pager", unit], log
        )
        found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", text)
        scores[unit] = float(found.group(1)) if found else float("nan")
    return scores


def build_manifest(b: Build, log: IO[str], timings: dict[str, float]) -> dict[str, Any]:
    folder = b.out / "manifest"
    folder.mkdir(exist_ok=True)
    (folder / "files.tsv").write_text("\n".join(file_list(b.rootfs)) + "\n")
    packages = run(
        [
            "dpkg-query",
            f"--admindir={b.rootfs}/var/lib/dpkg",
            "-W",
            "-f=${Package}\t${Version}\t${Architecture}\n",
        ],
        log,
    )
    (folder / "packages.tsv").write_text("".join(sorted(packages.splitlines(keepends=True))))
    report = {
        "board": b.board.name,
        "version": b.version,
        "source_date_epoch": b.epoch,
        "image": disk_name(b),
        "image_mb": _mb(b.out / disk_name(b)),
        "root_squashfs_mb": _mb(b.work / "rootfs.squashfs"),
        "slot_mb": b.board.slot_mb,
        "bundle": bundle_name(b),
        "bundle_mb": _mb(b.out / bundle_name(b)),
        "security_exposure": security_scores(b, log),
        "stage_seconds": timings,
        "packages": len(packages.splitlines()),
    }
    (folder / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _mb(path: Path) -> float | None:
    return round(path.stat().st_size / 2**20, 1) if path.exists() else None
