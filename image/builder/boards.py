"""The boards an image is built for: architecture, kernel, boot firmware and partition sizes."""

from __future__ import annotations

from dataclasses import dataclass

# Fixed partition GUIDs: the bootloader and RAUC find the slots by them, and builds stay comparable.
DISK_GUID = "6d1b0d1e-3f0c-4a57-9d0e-000000000000"
ESP_GUID = "6d1b0d1e-3f0c-4a57-9d0e-000000000001"
SLOT_A_GUID = "6d1b0d1e-3f0c-4a57-9d0e-00000000000a"
SLOT_B_GUID = "6d1b0d1e-3f0c-4a57-9d0e-00000000000b"
DATA_GUID = "6d1b0d1e-3f0c-4a57-9d0e-0000000000da"
# The Raspberry Pi's partitions besides the root slots: autoboot.txt's, then one boot partition per slot.
CONFIG_GUID = "6d1b0d1e-3f0c-4a57-9d0e-0000000000c0"
BOOT_A_GUID = "6d1b0d1e-3f0c-4a57-9d0e-0000000000ba"
BOOT_B_GUID = "6d1b0d1e-3f0c-4a57-9d0e-0000000000bb"
LINUX_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
BASIC_DATA_TYPE = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"  # FAT the Pi's firmware reads

COMMON_PACKAGES = [
    *("systemd", "systemd-sysv", "systemd-timesyncd", "systemd-resolved", "udev", "dbus", "kmod"),
    *(
        "iproute2",
        "initramfs-tools",
        "busybox",
        "openssh-server",
        "sudo",
        "ca-certificates",
        "libnss-myhostname",
    ),
    *("python3", "python3-venv", "rauc", "rauc-service", "squashfs-tools"),
    *("e2fsprogs", "dosfstools", "fdisk", "util-linux"),
]


@dataclass(frozen=True)
class Board:
    name: str
    arch: str  # Debian architecture
    kernel: str  # Debian kernel package
    boot: str  # "efi" (GRUB on the ESP) or "rpi" (the Raspberry Pi firmware)
    console: str  # the kernel's serial console
    packages: tuple[str, ...]
    stop_line: str  # the default config's [safety] stop_line
    slot_mb: int = 512  # each root slot's partition; the squashfs root must fit in it
    esp_mb: int = 32  # EFI: the ESP; Pi: the partition holding autoboot.txt
    boot_mb: int = 0  # Pi: each slot's boot partition (firmware, kernel, initramfs, device trees)
    device_trees: tuple[str, ...] = ()  # Pi: the kernel's device trees the firmware picks from
    kernel_suite: str = "bookworm"  # where the kernel comes from: a board newer than Debian 12's kernel

    @property
    def python_platforms(self) -> list[str]:
        """pip's --platform tags for binary wheels that run on Debian 12 (glibc 2.36) on this board."""
        machine = {"amd64": "x86_64", "arm64": "aarch64"}[self.arch]
        tags = [f"manylinux_2_{minor}_{machine}" for minor in (36, 35, 34, 33, 32, 31, 28, 27, 26, 24, 17)]
        return [*tags, f"manylinux2014_{machine}", f"linux_{machine}"]

    @property
    def boot_mount(self) -> str:
        """Where the partition the user may write before the first boot is mounted (docs/image.md)."""
        return "/boot/efi" if self.boot == "efi" else "/boot/config"

    @property
    def compatible(self) -> str:
        """RAUC's compatible string: a bundle for another board is refused."""
        return f"edge-appliance-{self.name}"


# No GPIO on a PC or a VM until the user wires one: the default config keeps a mock line (docs/image.md).
MOCK_LINE = '{ gpio = "mock", line = "STOP" }'
PI_LINE = '{ gpio = "gpiod", line = 17 }'

BOARDS = {
    "generic-amd64": Board(
        "generic-amd64",
        "amd64",
        "linux-image-amd64",
        "efi",
        "ttyS0",
        ("grub-efi-amd64-bin",),
        MOCK_LINE,
    ),
    "generic-arm64": Board(
        "generic-arm64",
        "arm64",
        "linux-image-arm64",
        "efi",
        "ttyAMA0",
        ("grub-efi-arm64-bin",),
        MOCK_LINE,
    ),
    # Debian's kernel and the firmware of Debian's raspi-firmware; tryboot armed by our rpi_tryboot
    # module (image/rpi/tryboot), which Debian's kernel lacks. The line is BCM 17 on the 40-pin header.
    "rpi4": Board(
        "rpi4",
        "arm64",
        "linux-image-arm64",
        "rpi",
        "ttyS1",
        ("raspi-firmware",),
        PI_LINE,
        boot_mb=128,
        device_trees=(
            "broadcom/bcm2711-rpi-4-b.dtb",
            "broadcom/bcm2711-rpi-cm4-io.dtb",
            "broadcom/bcm2711-rpi-400.dtb",
        ),
    ),
    "rpi5": Board(
        "rpi5",
        "arm64",
        "linux-image-arm64",
        "rpi",
        "ttyAMA10",
        ("raspi-firmware",),
        PI_LINE,
        boot_mb=128,
        device_trees=("broadcom/bcm2712-rpi-5-b.dtb",),
        # Debian 12's kernel (6.1) has no Pi 5 at all; the backports kernel (6.12) boots it, without
        # its RP1 chip: no Ethernet, USB or GPIO header yet (docs/image.md, "Raspberry Pi 5")
        kernel_suite="bookworm-backports",
    ),
}


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise SystemExit(f"image/build: unknown board {name!r}; boards: {', '.join(BOARDS)}") from None
