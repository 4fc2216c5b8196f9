"""Stage 30: board support: the boot loader and its files (GRUB on the ESP for EFI boards, the firmware's
partitions on the Raspberry Pi: builder/rpi.py), then the root slot's image, a squashfs: read-only by
nature, and a third the size of the files in it."""

from __future__ import annotations

import shutil
from typing import IO

from builder import boards
from builder.context import IMAGE_DIR, Build
from builder.host import BuildError, run
from builder.rpi import build_rpi_boot

GRUB_TARGET = {"amd64": ("x86_64-efi", "BOOTX64.EFI"), "arm64": ("arm64-efi", "BOOTAA64.EFI")}
GRUB_MODULES = [
    *("part_gpt", "fat", "ext2", "squash4", "xzio", "gzio", "normal", "linux", "configfile", "loadenv"),
    *("test", "echo", "regexp", "search", "serial", "terminal", "all_video", "efi_gop", "reboot", "halt"),
]
# Left out of the slot image: mount points the kernel and systemd fill, and the ESP's own files.
SQUASHFS_EXCLUDE = ["proc/*", "sys/*", "dev/*", "run/*", "tmp/*", "boot/efi/*", "boot/config/*"]


def build_boot(b: Build, log: IO[str]) -> None:
    if b.board.boot == "efi":
        build_esp(b, log)
    else:
        build_rpi_boot(b, log)
    build_squashfs(b, log)


def build_esp(b: Build, log: IO[str]) -> None:
    """EFI/BOOT/BOOT{X64,AA64}.EFI (GRUB with the modules it needs built in), grub.cfg and grubenv."""
    esp = b.work / "esp"
    if esp.exists():
        shutil.rmtree(esp)
    efi_boot = esp / "EFI/BOOT"
    efi_boot.mkdir(parents=True)
    target, loader = GRUB_TARGET[b.board.arch]
    modules = b.rootfs / "usr/lib/grub" / target  # from the board's own grub-efi-*-bin package
    run(
        [
            "grub-mkimage",
            "-d",
            modules,
            "-O",
            target,
            "-p",
            "/EFI/BOOT",
            "-o",
            efi_boot / loader,
            *GRUB_MODULES,
        ],
        log,
        env=b.env,
    )
    cfg = (IMAGE_DIR / "efi/grub.cfg").read_text().replace("@CONSOLE@", b.board.console)
    for key in ("SLOT_A_GUID", "SLOT_B_GUID"):
        cfg = cfg.replace(f"@{key}@", getattr(boards, key))
    (efi_boot / "grub.cfg").write_text(cfg)
    env = efi_boot / "grubenv"
    run(["grub-editenv", env, "create"], log)
    run(["grub-editenv", env, "set", "ORDER=A B", "A_OK=1", "B_OK=0", "A_TRY=0", "B_TRY=0"], log)
    for link in ("vmlinuz", "initrd.img"):
        if not (b.rootfs / link).exists():
            raise BuildError(f"{b.rootfs / link}: missing (the kernel package keeps it in /)")


def build_squashfs(b: Build, log: IO[str]) -> None:
    squashfs = b.work / "rootfs.squashfs"
    squashfs.unlink(missing_ok=True)
    excludes = [arg for pattern in SQUASHFS_EXCLUDE for arg in ("-e", pattern)]
    run(
        [
            "mksquashfs",
            b.rootfs,
            squashfs,
            "-comp",
            b.compression,
            "-noappend",
            "-no-progress",
            "-processors",
            "2",
            "-wildcards",
            *excludes,
        ],
        log,
        env=b.env,
    )
    size_mb = squashfs.stat().st_size / 2**20
    if size_mb > b.board.slot_mb:
        raise BuildError(
            f"the root's squashfs is {size_mb:.0f} MB, larger than a slot ({b.board.slot_mb} MB)"
        )
