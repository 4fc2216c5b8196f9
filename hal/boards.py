"""The boards the appliance knows, as data, and detection of the one it runs on."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hal.sysroot import SysRoot


class BoardFamily(enum.StrEnum):
    RASPBERRY_PI = "raspberry_pi"
    JETSON = "jetson"
    ROCKCHIP = "rockchip"
    PC = "pc"
    GENERIC = "generic"


@dataclass(frozen=True, slots=True)
class BoardSpec:
    """A known board: any of `compatible` in /proc/device-tree/compatible identifies it."""

    key: str
    name: str
    family: BoardFamily
    soc: str
    compatible: tuple[str, ...]
    # The label the kernel gives the gpiochip behind the whole 40-pin header (what `gpiodetect` prints in
    # brackets); an unset stop-line chip means this chip. None where the header is wired to several chips
    # (Rockchip banks gpio0..gpio4, Tegra main + always-on controllers): the config must then name one.
    gpio_chip: str | None = None


# Most specific first: the first entry with a matching compatible string wins, so SoC-wide
# fallbacks ("any BCM2712 board") come after the boards built on that SoC.
BOARDS: tuple[BoardSpec, ...] = (
    BoardSpec(
        "rpi5",
        "Raspberry Pi 5",
        BoardFamily.RASPBERRY_PI,
        "BCM2712",
        ("raspberrypi,5-model-b",),
        "pinctrl-rp1",
    ),
    BoardSpec(
        "cm5",
        "Raspberry Pi Compute Module 5",
        BoardFamily.RASPBERRY_PI,
        "BCM2712",
        ("raspberrypi,5-compute-module",),
        "pinctrl-rp1",
    ),
    BoardSpec(
        "rpi4b",
        "Raspberry Pi 4 Model B",
        BoardFamily.RASPBERRY_PI,
        "BCM2711",
        ("raspberrypi,4-model-b",),
        "pinctrl-bcm2711",
    ),
    BoardSpec(
        "rpi400",
        "Raspberry Pi 400",
        BoardFamily.RASPBERRY_PI,
        "BCM2711",
        ("raspberrypi,400",),
        "pinctrl-bcm2711",
    ),
    BoardSpec(
        "cm4",
        "Raspberry Pi Compute Module 4",
        BoardFamily.RASPBERRY_PI,
        "BCM2711",
        ("raspberrypi,4-compute-module",),
        "pinctrl-bcm2711",
    ),
    BoardSpec(
        "rpi3bplus",
        "Raspberry Pi 3 Model B+",
        BoardFamily.RASPBERRY_PI,
        "BCM2837",
        ("raspberrypi,3-model-b-plus",),
        "pinctrl-bcm2835",
    ),
    BoardSpec(
        "rpi3b",
        "Raspberry Pi 3 Model B",
        BoardFamily.RASPBERRY_PI,
        "BCM2837",
        ("raspberrypi,3-model-b",),
        "pinctrl-bcm2835",
    ),
    BoardSpec(
        "rpi-zero2w",
        "Raspberry Pi Zero 2 W",
        BoardFamily.RASPBERRY_PI,
        "BCM2837 (RP3A0)",
        ("raspberrypi,model-zero-2-w",),
        "pinctrl-bcm2835",
    ),
    BoardSpec(
        "rpi-bcm2712",
        "Raspberry Pi (BCM2712)",
        BoardFamily.RASPBERRY_PI,
        "BCM2712",
        ("brcm,bcm2712",),
        "pinctrl-rp1",
    ),
    BoardSpec(
        "rpi-bcm2711",
        "Raspberry Pi (BCM2711)",
        BoardFamily.RASPBERRY_PI,
        "BCM2711",
        ("brcm,bcm2711",),
        "pinctrl-bcm2711",
    ),
    BoardSpec(
        "rpi-bcm2837",
        "Raspberry Pi (BCM2837)",
        BoardFamily.RASPBERRY_PI,
        "BCM2837",
        ("brcm,bcm2837",),
        "pinctrl-bcm2835",
    ),
    BoardSpec(
        "jetson-orin-nano",
        "NVIDIA Jetson Orin Nano",
        BoardFamily.JETSON,
        "Tegra234",
        ("nvidia,p3767-0003", "nvidia,p3767-0004", "nvidia,p3767-0005"),
        "tegra234-gpio",
    ),
    BoardSpec(
        "jetson-orin-nx",
        "NVIDIA Jetson Orin NX",
        BoardFamily.JETSON,
        "Tegra234",
        ("nvidia,p3767-0000", "nvidia,p3767-0001"),
        "tegra234-gpio",
    ),
    BoardSpec(
        "jetson-xavier-nx",
        "NVIDIA Jetson Xavier NX",
        BoardFamily.JETSON,
        "Tegra194",
        (
            "nvidia,p3668-0000",
            "nvidia,p3668-0001",
            "nvidia,p3509-0000+p3668-0000",
            "nvidia,p3509-0000+p3668-0001",
        ),
        None,  # header pin 15 is PCC.04 on tegra194-gpio-aon, the rest on tegra194-gpio
    ),
    BoardSpec(
        "jetson-nano",
        "NVIDIA Jetson Nano",
        BoardFamily.JETSON,
        "Tegra210",
        (
            "nvidia,jetson-nano",
            "nvidia,p3450-0000",
            "nvidia,p3449-0000-b00+p3448-0000-b00",
            "nvidia,p3449-0000-a02+p3448-0000-a02",
            "nvidia,p3448-0000",
            "nvidia,p3448-0002",
            "nvidia,p3448-0003",
        ),
        "tegra-gpio",
    ),
    BoardSpec(
        "jetson-orin",
        "NVIDIA Jetson (Orin)",
        BoardFamily.JETSON,
        "Tegra234",
        ("nvidia,tegra234",),
        None,  # the AGX Orin header is on tegra234-gpio and tegra234-gpio-aon; Orin Nano/NX have entries
    ),
    # RK3588 headers take lines from several 32-line banks, each its own chip labelled gpio0..gpio4.
    BoardSpec("rk3588", "Rockchip RK3588 board", BoardFamily.ROCKCHIP, "RK3588", ("rockchip,rk3588",)),
    BoardSpec("rk3588s", "Rockchip RK3588S board", BoardFamily.ROCKCHIP, "RK3588S", ("rockchip,rk3588s",)),
)

GENERIC_X86_64 = BoardSpec("generic-amd64", "x86_64 PC", BoardFamily.PC, "x86_64", ())
GENERIC_ARM64 = BoardSpec("generic-arm64", "arm64 board", BoardFamily.GENERIC, "arm64", ())
GENERIC = BoardSpec("generic", "unknown board", BoardFamily.GENERIC, "unknown", ())


@dataclass(frozen=True, slots=True)
class Board:
    """The board found: its spec, the exact model string the firmware reports, and release details."""

    spec: BoardSpec
    model: str
    detail: str = ""

    def to_dict(self) -> dict[str, str | None]:
        return {
            "key": self.spec.key,
            "name": self.spec.name,
            "model": self.model,
            "soc": self.spec.soc,
            "family": str(self.spec.family),
            "detail": self.detail or None,
        }


def detect_board(root: SysRoot) -> Board:
    """Device tree first (ARM boards), then DMI and /proc/cpuinfo (PCs and boards without a tree)."""
    compatible = root.strings("/proc/device-tree/compatible")
    model = root.value("/proc/device-tree/model") or ""
    for spec in BOARDS:
        if any(c in compatible for c in spec.compatible):
            return Board(spec, model or spec.name, _release(root, spec))
    cpuinfo = root.text("/proc/cpuinfo") or ""
    if "vendor_id" in cpuinfo and "flags" in cpuinfo:
        dmi = " ".join(
            v
            for v in (
                root.value("/sys/class/dmi/id/sys_vendor"),
                root.value("/sys/class/dmi/id/product_name"),
            )
            if v
        )
        return Board(GENERIC_X86_64, dmi or GENERIC_X86_64.name)
    if "CPU architecture: 8" in cpuinfo or "aarch64" in (root.text("/proc/version") or ""):
        return Board(GENERIC_ARM64, model or GENERIC_ARM64.name)
    return Board(GENERIC, model or GENERIC.name)


def _release(root: SysRoot, spec: BoardSpec) -> str:
    if spec.family is BoardFamily.JETSON:
        line = (root.text("/etc/nv_tegra_release") or "").splitlines()[:1]
        if line:  # "# R32 (release), REVISION: 7.1, GCID: ..." -> "L4T R32.7.1"
            head = line[0].lstrip("# ").split(",")
            major = head[0].split(" ")[0]
            revision = head[1].split(":")[1].strip() if len(head) > 1 and ":" in head[1] else ""
            return f"L4T {major}.{revision}" if revision else f"L4T {major}"
    return ""
