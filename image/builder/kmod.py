"""Stage 30 on the Raspberry Pi: the rpi_tryboot kernel module (image/rpi/tryboot), built against the
image's own kernel in a throwaway chroot (so no compiler ever lands in the image), then installed into
the rootfs and loaded at every boot."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from builder.context import IMAGE_DIR, Build
from builder.host import BuildError, chroot_mounts, run

SOURCE = IMAGE_DIR / "rpi/tryboot"
MODULE = "rpi_tryboot"


def kernel_version(rootfs: Path) -> str:
    """The one kernel installed in the rootfs (`6.1.0-50-arm64`)."""
    versions = sorted(p.name for p in (rootfs / "lib/modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise BuildError(f"{rootfs}/lib/modules: expected one kernel, found {versions or 'none'}")
    return versions[0]


def build_tryboot_module(b: Build, log: IO[str]) -> None:
    version = kernel_version(b.rootfs)
    kbuild = _kbuild_chroot(b, version, log)
    src = kbuild / "tmp" / MODULE
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(SOURCE, src)
    inside = f"/tmp/{MODULE}"
    with chroot_mounts(kbuild):
        run(["chroot", kbuild, "make", "-C", f"/lib/modules/{version}/build", f"M={inside}", "modules"], log)
        run(["chroot", kbuild, "strip", "--strip-debug", f"{inside}/{MODULE}.ko"], log)
    updates = b.rootfs / "lib/modules" / version / "updates"
    updates.mkdir(exist_ok=True)
    shutil.copy2(src / f"{MODULE}.ko", updates / f"{MODULE}.ko")
    run(["chroot", b.rootfs, "depmod", "-a", version], log)
    loads = b.rootfs / "etc/modules-load.d"
    loads.mkdir(parents=True, exist_ok=True)
    (loads / "rpi-tryboot.conf").write_text(f"# sets the Pi firmware's tryboot flag\n{MODULE}\n")


def _kbuild_chroot(b: Build, version: str, log: IO[str]) -> Path:
    """Debian with this kernel's headers and its compiler, made once per kernel version."""
    kbuild = b.work / "kbuild"
    done = kbuild / f".made-for-{version}"
    if done.exists():
        return kbuild
    if kbuild.exists():
        shutil.rmtree(kbuild)
    b.work.mkdir(parents=True, exist_ok=True)
    run(
        [
            "mmdebstrap",
            "--mode=root",
            "--variant=apt",
            f"--architectures={b.board.arch}",
            '--aptopt=APT::Install-Recommends "false"',
            f"--include=linux-headers-{version},make,binutils",
            # newer headers pull in their kernel, whose initramfs (never used here) takes long under qemu
            '--essential-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" && '
            'echo MODULES=list > "$1/etc/initramfs-tools/conf.d/kbuild"',
            "bookworm",
            kbuild,
            *b.sources,
        ],
        log,
        env=b.env,
    )
    done.touch()
    return kbuild
