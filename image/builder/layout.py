"""Stage 40: the disk image (genimage): the boot partitions (the ESP; on the Pi autoboot.txt's partition
and one per slot) and root slot A. Slot B and the data partition are made on the first boot in the space
after them (so the flashed file stays small, and data fills the card)."""

from __future__ import annotations

import shutil
from typing import IO

from builder import boards
from builder.context import Build
from builder.host import run


def genimage_config(b: Build) -> str:
    return _rpi_config(b) if b.board.boot == "rpi" else _efi_config(b)


def _efi_config(b: Build) -> str:
    return f"""
image esp.vfat {{
    vfat {{ label = "ESP" extraargs = "-i 45535030 --invariant" }}
    size = {b.board.esp_mb}M
}}
image {disk_name(b)} {{
    hdimage {{ partition-table-type = "gpt" disk-uuid = "{boards.DISK_GUID}" }}
    partition esp {{
        image = "esp.vfat" offset = 1M bootable = true
        partition-type-uuid = "{boards.ESP_TYPE}" partition-uuid = "{boards.ESP_GUID}"
    }}
    partition rootfs_a {{
        image = "rootfs.squashfs" size = {b.board.slot_mb}M
        partition-type-uuid = "{boards.LINUX_TYPE}" partition-uuid = "{boards.SLOT_A_GUID}"
    }}
}}
"""


# The Pi's FAT partitions: (genimage name, label, volume id, folder under work/rpi, GUID, size).
def _rpi_partitions(b: Build) -> list[tuple[str, str, str, str, str, int]]:
    return [
        ("config", "CONFIG", "434f4e46", "config", boards.CONFIG_GUID, b.board.esp_mb),
        ("boot_a", "BOOT_A", "424f4f41", "boot-a", boards.BOOT_A_GUID, b.board.boot_mb),
        ("boot_b", "BOOT_B", "424f4f42", "boot-b", boards.BOOT_B_GUID, b.board.boot_mb),
    ]


def _rpi_config(b: Build) -> str:
    """GPT (the Pi 4's bootloader EEPROM reads it since 2020, the Pi 5's always): partition 1 holds
    autoboot.txt, 2 and 3 are the slots' boot partitions, 4 root slot A; 5 and 6 come on the first boot.
    Aligned to 4 MiB, the erase block of most SD cards."""
    vfats = "".join(
        f"""
image {folder}.vfat {{
    vfat {{ label = "{label}" extraargs = "-i {volume_id} --invariant" }}
    mountpoint = "/{folder}"
    size = {size}M
}}"""
        for _, label, volume_id, folder, _, size in _rpi_partitions(b)
    )
    partitions = "".join(
        f"""
    partition {name} {{
        image = "{folder}.vfat" bootable = true
        partition-type-uuid = "{boards.BASIC_DATA_TYPE}" partition-uuid = "{guid}"
    }}"""
        for name, _, _, folder, guid, _ in _rpi_partitions(b)
    )
    return f"""{vfats}
image {disk_name(b)} {{
    hdimage {{ partition-table-type = "gpt" disk-uuid = "{boards.DISK_GUID}" align = 4M }}{partitions}
    partition rootfs_a {{
        image = "rootfs.squashfs" size = {b.board.slot_mb}M
        partition-type-uuid = "{boards.LINUX_TYPE}" partition-uuid = "{boards.SLOT_A_GUID}"
    }}
}}
"""


def disk_name(b: Build) -> str:
    return f"appliance-{b.board.name}.img"


def build_layout(b: Build, log: IO[str]) -> None:
    config = b.work / "genimage.cfg"
    config.write_text(genimage_config(b))
    tmp = b.work / "genimage-tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    (b.out / disk_name(b)).unlink(missing_ok=True)
    run(
        [
            "genimage",
            "--config",
            config,
            "--rootpath",
            b.work / ("rpi" if b.board.boot == "rpi" else "esp"),
            "--tmppath",
            tmp,
            "--inputpath",
            b.work,
            "--outputpath",
            b.work,
        ],
        log,
        env=b.env,
    )
    shutil.move(b.work / disk_name(b), b.out / disk_name(b))
    shutil.rmtree(tmp, ignore_errors=True)
