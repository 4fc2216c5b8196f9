"""Stage 30 on the Raspberry Pi: one boot partition per slot, read by the Pi's firmware, and the small
partition in front of them whose autoboot.txt says which one boots (docs/image.md, "Raspberry Pi").

Each boot partition holds the firmware (Debian's raspi-firmware), Debian's kernel and initramfs, the
board's device trees, config.txt and a cmdline.txt naming its own root slot. autoboot.txt boots slot
A's partition (2) and, for the one boot after a tryboot reboot, slot B's (3): rauc-tryboot moves them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from builder import boards
from builder.context import IMAGE_DIR, Build
from builder.host import BuildError
from builder.kmod import build_tryboot_module, kernel_version

SLOTS = {"A": boards.SLOT_A_GUID, "B": boards.SLOT_B_GUID}  # boot partitions 2 and 3
# The firmware files each Pi needs on its boot partition (a Pi 5 keeps its firmware in its EEPROM).
FIRMWARE = {"rpi4": ("start4*.elf", "fixup4*.dat"), "rpi5": ()}
FIRMWARE_DIR = "usr/lib/raspi-firmware"
OVERLAY = IMAGE_DIR / "rpi/rootfs"

AUTOBOOT = """[all]
tryboot_a_b=1
boot_partition=2
[tryboot]
boot_partition=3
"""

CONFIG_TXT = """# The Raspberry Pi firmware's settings for slot {slot} (docs/image.md). Made by image/build:
# an update replaces this partition, so a change made here lasts until the next one.
arm_64bit=1
upstream_kernel=1
enable_uart=1
kernel=vmlinuz
initramfs initrd.img followkernel
disable_splash=1
"""


def cmdline(b: Build, slot: str) -> str:
    """The kernel's command line of one slot: its root partition and the slot's name for RAUC."""
    return (
        f"root=PARTUUID={SLOTS[slot]} rootfstype=squashfs ro rootwait quiet panic=10 "
        f"console=tty1 console={b.board.console},115200 rauc.slot={slot}\n"
    )


def build_rpi_boot(b: Build, log: IO[str]) -> None:
    """work/rpi/config (autoboot.txt) and work/rpi/boot-a, boot-b: the FAT partitions' files."""
    build_tryboot_module(b, log)
    version = kernel_version(b.rootfs)
    folder = b.work / "rpi"
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "config").mkdir(parents=True)
    (folder / "config/autoboot.txt").write_text(AUTOBOOT)
    for slot in SLOTS:
        boot = folder / f"boot-{slot.lower()}"
        boot.mkdir()
        _copy_boot_files(b, version, boot)
        (boot / "config.txt").write_text(CONFIG_TXT.format(slot=slot))
        (boot / "cmdline.txt").write_text(cmdline(b, slot))
        size_mb = sum(f.stat().st_size for f in boot.rglob("*") if f.is_file()) / 2**20
        if size_mb > b.board.boot_mb - 8:  # FAT's own tables take a few MB
            raise BuildError(
                f"the boot files take {size_mb:.0f} MB, too many for a {b.board.boot_mb} MB boot partition"
            )
    # raspi-firmware's kernel hook filled /boot/firmware in the rootfs: the partitions above replace it.
    firmware_copy = b.rootfs / "boot/firmware"
    if firmware_copy.exists():
        shutil.rmtree(firmware_copy)
    firmware_copy.mkdir()


def _copy_boot_files(b: Build, version: str, boot: Path) -> None:
    r = b.rootfs
    for pattern in FIRMWARE[b.board.name]:
        found = sorted((r / FIRMWARE_DIR).glob(pattern))
        if not found:
            raise BuildError(f"{r / FIRMWARE_DIR}: no {pattern} (is raspi-firmware installed?)")
        for path in found:
            shutil.copy2(path, boot / path.name)
    # the firmware's licence travels in the root (/usr/share/doc/raspi-firmware/copyright)
    shutil.copy2(r / f"boot/vmlinuz-{version}", boot / "vmlinuz")
    shutil.copy2(r / f"boot/initrd.img-{version}", boot / "initrd.img")
    trees = r / f"usr/lib/linux-image-{version}"
    for tree in b.board.device_trees:
        if not (trees / tree).exists():
            raise BuildError(
                f"kernel {version} has no device tree {tree} for {b.board.name} "
                "(docs/image.md, 'Raspberry Pi')"
            )
        shutil.copy2(trees / tree, boot / Path(tree).name)


def customize_rootfs(b: Build) -> None:
    """The Pi's own files in the rootfs: the RAUC backend for tryboot."""
    shutil.copytree(OVERLAY, b.rootfs, dirs_exist_ok=True, symlinks=True)
