"""Stage 40: the disk image (genimage): the ESP and root slot A. Slot B and the data partition are made
on the first boot in the space after them (so the flashed file stays small, and data fills the card)."""

from __future__ import annotations

import shutil
from typing import IO

from builder import boards
from builder.context import Build
from builder.host import run


def genimage_config(b: Build) -> str:
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
            b.work / "esp",
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
