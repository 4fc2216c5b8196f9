"""The ARM boards' images, built here for real (under qemu-user) and checked without their hardware: the
partition table, what the Raspberry Pi's firmware reads from its partitions (autoboot.txt, config.txt,
cmdline.txt against the partition GUIDs, the kernel and device trees), GRUB for arm64 EFI, the venv's
Python and LiteRT as aarch64 programs, and the update bundle's contents.

Each build takes a quarter of an hour or more on two cores, so these run when asked for: `-m boards`
(docs/image.md). $APPLIANCE_BOARDS_OUT keeps (and reuses) each board's build in a folder per board."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.image.conftest import BuiltImage, boot_box, booted_and_good

REPO = Path(__file__).resolve().parents[2]
BOARDS = ["generic-arm64", "rpi4", "rpi5"]
AARCH64 = 0xB7  # ELF e_machine
SECTOR = 512

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.boards]


@dataclass(frozen=True)
class Partition:
    number: int
    name: str
    start: int  # bytes
    size: int
    type: str
    uuid: str


@dataclass(frozen=True)
class Board(BuiltImage):
    """One board's build, read without mounting anything."""

    name: str = ""

    def partitions(self) -> list[Partition]:
        table = json.loads(_run("sfdisk", "--json", self.disk))["partitiontable"]
        assert table["label"] == "gpt"
        return [
            Partition(
                number=int(re.search(r"(\d+)$", p["node"]).group(1)),  # type: ignore[union-attr]
                name=p.get("name", ""),
                start=p["start"] * SECTOR,
                size=p["size"] * SECTOR,
                type=p["type"].lower(),
                uuid=p["uuid"].lower(),
            )
            for p in table["partitions"]
        ]

    def partition(self, name: str) -> Partition:
        return next(p for p in self.partitions() if p.name == name)

    def fat_file(self, partition: str, path: str) -> bytes:
        """A file from a FAT partition of the image, read with mtools (nothing mounted)."""
        start = self.partition(partition).start
        done = subprocess.run(
            ["mcopy", "-n", "-i", f"{self.disk}@@{start}", f"::{path}", "-"],
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{partition}:{path}: {done.stderr.decode()}"
        return done.stdout

    def fat_listing(self, partition: str, folder: str = "") -> list[str]:
        start = self.partition(partition).start
        listing = _run("mdir", "-b", "-i", f"{self.disk}@@{start}", f"::{folder}")
        return sorted(Path(line.strip()).name for line in listing.splitlines() if line.strip())

    def root_file(self, path: str, into: Path) -> Path:
        """A file from the root slot's squashfs (what the box runs), links followed inside it."""
        _run("unsquashfs", "-no-progress", "-f", "-d", into, self.root_squashfs, path)
        found = into / path.lstrip("/")
        while found.is_symlink():
            target = os.readlink(found)
            inside = target if target.startswith("/") else str(Path(path).parent / target)
            path = os.path.normpath(inside)
            _run("unsquashfs", "-no-progress", "-f", "-d", into, self.root_squashfs, path)
            found = into / path.lstrip("/")
        return found

    def root_listing(self) -> list[str]:
        return _run("unsquashfs", "-l", "-d", "", self.root_squashfs).splitlines()


def _run(*cmd: object) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}: {done.stderr}"
    return done.stdout


def _elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(head[18:20], "little")


@pytest.fixture(scope="module", params=BOARDS)
def board(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Board:
    if os.geteuid() != 0:
        pytest.skip("building an image needs root (mmdebstrap --mode=root, chroot)")
    name = str(request.param)
    keep = os.environ.get("APPLIANCE_BOARDS_OUT")
    out = Path(keep) / name if keep else tmp_path_factory.mktemp(name)
    if not (out / "manifest/build.json").exists():
        done = subprocess.run(
            [sys.executable, REPO / "image/build", "--board", name, "--out", out],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        assert done.returncode == 0, f"image/build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return Board(out, name)


def _guids() -> dict[str, str]:
    sys.path.insert(0, str(REPO / "image"))
    try:
        from builder import boards
    finally:
        sys.path.pop(0)
    return {k: str(v) for k, v in vars(boards).items() if k.endswith(("_GUID", "_TYPE"))}


def test_the_partition_table_holds_the_boot_partitions_and_slot_a(board: Board) -> None:
    g = _guids()
    parts = board.partitions()
    if board.name.startswith("rpi"):
        expected = [
            (1, "config", g["BASIC_DATA_TYPE"], g["CONFIG_GUID"]),
            (2, "boot_a", g["BASIC_DATA_TYPE"], g["BOOT_A_GUID"]),
            (3, "boot_b", g["BASIC_DATA_TYPE"], g["BOOT_B_GUID"]),
            (4, "rootfs_a", g["LINUX_TYPE"], g["SLOT_A_GUID"]),
        ]
    else:
        expected = [
            (1, "esp", g["ESP_TYPE"], g["ESP_GUID"]),
            (2, "rootfs_a", g["LINUX_TYPE"], g["SLOT_A_GUID"]),
        ]
    assert [(p.number, p.name, p.type, p.uuid) for p in parts] == expected
    # slot B and the data partition are made on the first boot with the GUIDs the boot files name
    assert board.report["slot_mb"] * 2**20 == board.partition("rootfs_a").size  # type: ignore[operator]
    layout = board.root_file("/usr/lib/appliance/layout", board.out / "probe").read_text()
    assert g["SLOT_B_GUID"] in layout and g["DATA_GUID"] in layout


def test_the_pis_firmware_finds_autoboot_txt_and_a_bootable_partition_per_slot(board: Board) -> None:
    if not board.name.startswith("rpi"):
        pytest.skip("Raspberry Pi boards only")
    g = _guids()
    autoboot = board.fat_file("config", "autoboot.txt").decode()
    assert autoboot == "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
    assert len(autoboot) <= 512  # the firmware reads no more
    trees = {"rpi4": ["bcm2711-rpi-4-b.dtb", "bcm2711-rpi-cm4-io.dtb"], "rpi5": ["bcm2712-rpi-5-b.dtb"]}
    for slot, partition, root in (("A", "boot_a", g["SLOT_A_GUID"]), ("B", "boot_b", g["SLOT_B_GUID"])):
        files = board.fat_listing(partition)
        for needed in ["config.txt", "cmdline.txt", "vmlinuz", "initrd.img", *trees[board.name]]:
            assert needed in files, f"{partition}: no {needed} in {files}"
        if board.name == "rpi4":  # the Pi 4 loads its firmware from the card; the Pi 5 from its EEPROM
            assert {"start4.elf", "fixup4.dat"} <= set(files)
        config = board.fat_file(partition, "config.txt").decode()
        for line in (
            "arm_64bit=1",
            "kernel=vmlinuz",
            "initramfs initrd.img followkernel",
            "upstream_kernel=1",
        ):
            assert line in config.splitlines(), f"{partition}/config.txt lacks {line!r}"
        cmdline = board.fat_file(partition, "cmdline.txt").decode()
        assert cmdline.count("\n") == 1 and cmdline.endswith("\n"), "cmdline.txt is one line"
        words = cmdline.split()
        assert f"root=PARTUUID={root}" in words and f"rauc.slot={slot}" in words
        assert "rootfstype=squashfs" in words and "ro" in words
        kernel = board.fat_file(partition, "vmlinuz")
        image = gzip.decompress(kernel) if kernel[:2] == b"\x1f\x8b" else kernel
        assert image[0x38:0x3C] == b"ARM\x64", "vmlinuz is not an arm64 kernel Image"


def test_the_pis_rootfs_arms_tryboot_and_rauc_uses_it(board: Board) -> None:
    if not board.name.startswith("rpi"):
        pytest.skip("Raspberry Pi boards only")
    listing = board.root_listing()
    assert any(re.search(r"/lib/modules/[^/]+/updates/rpi_tryboot\.ko$", line) for line in listing)
    loads = board.root_file("/etc/modules-load.d/rpi-tryboot.conf", board.out / "probe").read_text()
    assert "rpi_tryboot" in loads.split()
    module = next(line for line in listing if line.endswith("updates/rpi_tryboot.ko"))
    assert _elf_machine(board.root_file(module, board.out / "probe")) == AARCH64
    conf = board.root_file("/etc/rauc/system.conf", board.out / "probe").read_text()
    assert "bootloader=custom" in conf
    assert "bootloader-custom-backend=/usr/lib/appliance/rauc-tryboot" in conf
    assert "[slot.boot.1]\ndevice=/dev/disk/by-partlabel/boot_b\ntype=vfat\nparent=rootfs.1" in conf
    backend = board.root_file("/usr/lib/appliance/rauc-tryboot", board.out / "probe")
    assert backend.stat().st_mode & 0o111
    fstab = board.root_file("/etc/fstab", board.out / "probe").read_text()
    assert re.search(r"^PARTLABEL=config\s+/boot/config\s+vfat", fstab, re.M)


def test_generic_arm64_boots_grub_for_arm64_from_the_esp(board: Board) -> None:
    if board.name != "generic-arm64":
        pytest.skip("EFI boards only")
    loader = board.fat_file("esp", "EFI/BOOT/BOOTAA64.EFI")
    pe = int.from_bytes(loader[0x3C:0x40], "little")
    assert loader[pe : pe + 4] == b"PE\0\0"
    assert int.from_bytes(loader[pe + 4 : pe + 6], "little") == 0xAA64  # IMAGE_FILE_MACHINE_ARM64
    cfg = board.fat_file("esp", "EFI/BOOT/grub.cfg").decode()
    assert "console=ttyAMA0,115200" in cfg
    assert {"/vmlinuz", "/initrd.img"} <= set(board.root_listing())  # GRUB loads them from the slot


def test_the_runtime_is_built_for_aarch64(board: Board, tmp_path: Path) -> None:
    python = board.root_file("/opt/appliance/venv/bin/python", tmp_path)
    assert _elf_machine(python) == AARCH64
    litert = [
        line
        for line in board.root_listing()
        if "/site-packages/ai_edge_litert/" in line and line.endswith(".so")
    ]
    assert litert, "LiteRT is not in the venv"
    for library in litert:
        assert _elf_machine(board.root_file(library, tmp_path)) == AARCH64, library
    packages = (board.out / "manifest/packages.tsv").read_text()
    assert re.search(r"^linux-image-\S+-arm64\t\S+\tarm64$", packages, re.M)


def test_the_bundle_carries_what_the_board_updates(board: Board) -> None:
    bundle = board.bundle
    info = json.loads(
        _run("rauc", "info", "--output-format=json", "--keyring", board.out / "keys/ca.cert.pem", bundle)
    )
    assert info["compatible"] == f"edge-appliance-{board.name}"
    images = {
        slot: (image["filename"], image["hooks"]) for entry in info["images"] for slot, image in entry.items()
    }
    expected: dict[str, tuple[str, list[str]]] = {"rootfs": ("rootfs.squashfs", [])}
    if board.name.startswith("rpi"):  # the boot partition, made to name its own slot's root by the hook
        expected["boot"] = ("boot.vfat", ["post-install"])
    assert images == expected


ARM64_BOOT_TIMEOUT_S = 1500  # aarch64 emulated on two x86 cores: some ten times slower than the amd64 VM


def test_generic_arm64_boots_in_qemu_and_polls_the_bench(board: Board, tmp_path: Path) -> None:
    """The arm64 image booted on QEMU's `virt` board with AAVMF (emulated: no KVM for another
    architecture): first boot, status API, the bench's device polled, the slot committed."""
    if board.name != "generic-arm64":
        pytest.skip("generic-arm64 only (the Pi boards need their firmware)")
    with boot_box(board, tmp_path, arch="aarch64", timeout=ARM64_BOOT_TIMEOUT_S) as box:
        print(f"\ngeneric-arm64: boot to the first status answer {box.first_status_s:.0f} s (emulated)")
        assert box.ssh("uname -m").strip() == "aarch64"
        assert box.ssh("findmnt -no FSTYPE,OPTIONS /").split()[0] == "squashfs"
        assert box.ssh("systemctl is-active appliance appliance-safety").split() == ["active", "active"]
        deadline = time.monotonic() + 300
        while True:
            status = box.vm.api("/api/v1/status", box.credential)
            reading = {s["id"]: s for s in status["sensors"]}.get("press-1.oil_temperature", {})
            if reading.get("quality") == "ok":
                break
            assert time.monotonic() < deadline, f"the bench's device was not polled: {status['sensors']}"
            time.sleep(2)
        assert 42.0 <= reading["value"] <= 54.0
        while not booted_and_good(box.update_status(), "rootfs.0"):
            assert time.monotonic() < deadline, f"slot A was not marked good: {box.update_status()}"
            time.sleep(5)
