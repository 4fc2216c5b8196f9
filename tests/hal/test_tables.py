"""Every entry of the board and accelerator tables is found from the files that identify it, and the
inference plan follows from what was found."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from hal.accelerators import ACCELERATORS, AcceleratorSpec, detect_accelerators
from hal.boards import BOARDS, BoardFamily, BoardSpec, detect_board
from hal.plan import BackendKind, ModelVariant, cpu_threads, plan_inference
from hal.report import detect
from hal.sysroot import SysRoot
from hal.system import Cpu

ARM_CPUINFO = (
    "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU part\t: 0xd08\n\n"
)


def tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, content in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def dt(*compatible: str, model: str = "") -> dict[str, bytes | str]:
    return {
        "/proc/device-tree/compatible": b"".join(c.encode() + b"\0" for c in compatible),
        "/proc/device-tree/model": model.encode() + b"\0",
        "/proc/cpuinfo": ARM_CPUINFO,
    }


@pytest.mark.parametrize("spec", BOARDS, ids=lambda s: s.key)
def test_each_board_is_found_by_each_of_its_compatible_strings(tmp_path: Path, spec: BoardSpec) -> None:
    for n, compatible in enumerate(spec.compatible):
        # real trees list the board first and the SoC after it
        root = tree(tmp_path / str(n), dt(compatible, "vendor,some-soc", model=f"{spec.name} Rev 9"))
        board = detect_board(SysRoot(root))
        assert board.spec == spec
        assert board.model == f"{spec.name} Rev 9"


def test_a_board_entry_wins_over_its_soc_fallback(tmp_path: Path) -> None:
    root = tree(tmp_path, dt("raspberrypi,4-model-b", "brcm,bcm2711"))
    assert detect_board(SysRoot(root)).spec.key == "rpi4b"
    root = tree(tmp_path / "unknown-pi", dt("raspberrypi,4-future-board", "brcm,bcm2711"))
    assert detect_board(SysRoot(root)).spec.key == "rpi-bcm2711"


def test_boards_without_a_known_tree(tmp_path: Path) -> None:
    pc = tree(
        tmp_path / "pc",
        {
            "/proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu lm avx2\n",
            "/sys/class/dmi/id/sys_vendor": "Advantech\n",
            "/sys/class/dmi/id/product_name": "UNO-2484G\n",
        },
    )
    assert (detect_board(SysRoot(pc)).spec.key, detect_board(SysRoot(pc)).model) == (
        "generic-amd64",
        "Advantech UNO-2484G",
    )
    arm = tree(tmp_path / "arm", dt("acme,widget", model="Acme Widget"))
    assert (detect_board(SysRoot(arm)).spec.key, detect_board(SysRoot(arm)).model) == (
        "generic-arm64",
        "Acme Widget",
    )
    assert detect_board(SysRoot(tmp_path / "empty")).spec.key == "generic"


def test_jetson_release_comes_from_nv_tegra_release(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            **dt("nvidia,p3450-0000", "nvidia,jetson-nano", "nvidia,tegra210"),
            "/etc/nv_tegra_release": "# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, "
            "EABI: aarch64, DATE: Fri Jun  9 04:25:08 UTC 2023\n",
        },
    )
    assert detect_board(SysRoot(root)).detail == "L4T R32.7.4"


def accelerator_files(spec: AcceleratorSpec) -> list[dict[str, bytes | str]]:
    """One minimal tree per way the table says the accelerator can be found."""
    trees: list[dict[str, bytes | str]] = []
    for vendor, product, _ in spec.usb_ids:
        trees.append(
            {
                "/sys/bus/usb/devices/2-1/idVendor": vendor + "\n",
                "/sys/bus/usb/devices/2-1/idProduct": product + "\n",
                "/sys/bus/usb/devices/usb1/idVendor": "1d6b\n",
                "/sys/bus/usb/devices/usb1/idProduct": "0003\n",
            }
        )
    for vendor, device in spec.pci_ids:
        trees.append(
            {
                "/sys/bus/pci/devices/0000:01:00.0/vendor": vendor + "\n",
                "/sys/bus/pci/devices/0000:01:00.0/device": device + "\n",
            }
        )
    for pattern in spec.dev_nodes:
        trees.append({"/dev/" + pattern.replace("*", "0").replace("[0-9]", ""): ""})
    for node, compatible in spec.dt_nodes:
        base = "/proc/device-tree/" + node.replace("*", "fdab0000")
        trees.append({f"{base}/compatible": compatible.encode() + b"\0", f"{base}/status": b"okay\0"})
    return trees


def board_for(spec: AcceleratorSpec) -> dict[str, bytes | str]:
    family = spec.board_families[0] if spec.board_families else BoardFamily.PC
    boards: dict[BoardFamily, dict[str, bytes | str]] = {
        BoardFamily.JETSON: dt("nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"),
        BoardFamily.ROCKCHIP: dt("radxa,rock-5b", "rockchip,rk3588"),
        BoardFamily.PC: {"/proc/cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: lm avx2\n"},
    }
    return boards[family]


@pytest.mark.parametrize("spec", ACCELERATORS, ids=lambda s: s.key)
def test_each_accelerator_is_found_by_each_of_its_sources(tmp_path: Path, spec: AcceleratorSpec) -> None:
    sources = accelerator_files(spec)
    assert sources, f"{spec.key} has no way to be found"
    for n, files in enumerate(sources):
        root = SysRoot(tree(tmp_path / str(n), {**board_for(spec), **files}))
        found = detect_accelerators(root, detect_board(root))
        assert [a.spec.key for a in found] == [spec.key], files


@pytest.mark.parametrize("spec", [s for s in ACCELERATORS if s.board_families], ids=lambda s: s.key)
def test_board_bound_accelerators_are_not_found_on_other_boards(
    tmp_path: Path, spec: AcceleratorSpec
) -> None:
    for n, files in enumerate(accelerator_files(spec)):
        root = SysRoot(tree(tmp_path / str(n), {**dt("raspberrypi,5-model-b", "brcm,bcm2712"), **files}))
        assert detect_accelerators(root, detect_board(root)) == []


def test_a_disabled_npu_node_is_not_an_accelerator(tmp_path: Path) -> None:
    root = SysRoot(
        tree(
            tmp_path,
            {
                **dt("radxa,rock-5b", "rockchip,rk3588"),
                "/proc/device-tree/npu@fdab0000/compatible": b"rockchip,rk3588-rknpu\0",
                "/proc/device-tree/npu@fdab0000/status": b"disabled\0",
            },
        )
    )
    assert detect_accelerators(root, detect_board(root)) == []


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 2), (3, 2), (4, 3), (6, 4), (12, 4)])
def test_cpu_threads_leave_a_core_free_on_bigger_boxes(cores: int, threads: int) -> None:
    assert cpu_threads(cores) == threads


def test_variant_follows_memory_and_accelerators() -> None:
    cpu = Cpu("arm64", "Cortex-A72", 4, ("asimd",))
    assert plan_inference(cpu, 3800, []).variant is ModelVariant.FLOAT
    small = plan_inference(cpu, 1900, [])
    assert small.variant is ModelVariant.INT8 and "1900 MB" in small.variant_reason
    coral = next(s for s in ACCELERATORS if s.key == "coral-usb")
    from hal.accelerators import Accelerator

    plan = plan_inference(cpu, 8000, [Accelerator(coral, "/sys/bus/usb/devices/2-1")])
    assert plan.variant is ModelVariant.INT8 and "full-integer" in plan.variant_reason
    assert [b.kind for b in plan.backends] == [BackendKind.EDGETPU, BackendKind.XNNPACK, BackendKind.CPU]
    assert plan.backends[0].delegate == "libedgetpu.so.1" and dict(plan.backends[0].delegate_options) == {
        "device": "usb"
    }
    assert plan.backends[1].threads == 3


def test_this_machine_is_reported_as_what_it_is_with_a_plan_for_what_was_found() -> None:
    """Whatever runs the suite: an x86 PC, an arm64 board, the arm64 VM of the image."""
    report = detect("/")
    machine = platform.machine()
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, "arm")
    assert report.cpu.architecture == arch, (machine, report.cpu)
    assert (report.board.spec.family is BoardFamily.PC) == (arch == "x86_64"), report.board
    assert report.cpu.cores == os.cpu_count()
    assert report.memory_mb > 512
    # one backend for each accelerator found that LiteRT drives, best first; the CPU always closes the plan
    delegated = [a.spec.kind for a in report.accelerators if a.spec.litert_delegate]
    assert [str(b.kind) for b in report.plan.backends] == [
        *(str(kind) for kind in delegated),
        BackendKind.XNNPACK,
        BackendKind.CPU,
    ]


def test_a_tree_whose_files_never_end_is_read_within_a_bound(tmp_path: Path) -> None:
    """`appliance hal --root` reads whatever tree it is pointed at: /dev/zero or a FIFO with no writer in
    place of a /proc file gives a bounded read or nothing, never a hang or the whole memory."""
    root = tree(tmp_path, {"/proc/device-tree/model": "Raspberry Pi 4 Model B Rev 1.4\0"})
    (root / "proc/cpuinfo").symlink_to("/dev/zero")
    os.mkfifo(root / "proc/meminfo")
    sysroot = SysRoot(root)
    cpuinfo = sysroot.text("/proc/cpuinfo")
    assert cpuinfo is not None and len(cpuinfo) == SysRoot.MAX_BYTES
    assert sysroot.text("/proc/meminfo") in ("", None)
    assert detect(root).board.model == "Raspberry Pi 4 Model B Rev 1.4"
