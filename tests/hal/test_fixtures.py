"""Real boards, from fixture trees made of their real files: the right board, accelerators and plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hal.report import detect
from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures"

# fixture: (board key, cores, arch, memory MB, root disk, accelerators, backends, variant)
EXPECTED = {
    "rpi3bplus": ("rpi3bplus", 4, "arm64", 907, "mmcblk0", [], ["xnnpack", "cpu"], "int8"),
    "rpi4b": ("rpi4b", 4, "arm64", 7813, "mmcblk0", [], ["xnnpack", "cpu"], "float"),
    "rpi5": ("rpi5", 4, "arm64", 8058, "mmcblk0", [], ["xnnpack", "cpu"], "float"),
    "cm4": ("cm4", 4, "arm64", 922, "mmcblk0", [], ["xnnpack", "cpu"], "int8"),
    "rpi-zero2w": ("rpi-zero2w", 4, "arm64", 409, "mmcblk0", [], ["xnnpack", "cpu"], "int8"),
    "jetson-nano": (
        "jetson-nano",
        4,
        "arm64",
        3964,
        "mmcblk0",
        ["jetson-gpu"],
        ["gpu", "xnnpack", "cpu"],
        "float",
    ),
    "jetson-orin-nano": (
        "jetson-orin-nano",
        6,
        "arm64",
        7619,
        "nvme0n1",
        ["jetson-gpu"],
        ["gpu", "xnnpack", "cpu"],
        "float",
    ),
    "x86-pc": ("generic-amd64", 8, "x86_64", 15867, "nvme0n1", [], ["xnnpack", "cpu"], "float"),
    "x86-pc-coral-usb-unprogrammed": (
        "generic-amd64",
        8,
        "x86_64",
        15867,
        "nvme0n1",
        ["coral-usb"],
        ["edgetpu", "xnnpack", "cpu"],
        "int8",
    ),
    "x86-pc-coral-usb-programmed": (
        "generic-amd64",
        8,
        "x86_64",
        15867,
        "nvme0n1",
        ["coral-usb"],
        ["edgetpu", "xnnpack", "cpu"],
        "int8",
    ),
    "rpi5-hailo8l": ("rpi5", 4, "arm64", 8058, "mmcblk0", ["hailo8"], ["xnnpack", "cpu"], "float"),
    "rk3588": ("rk3588", 8, "arm64", 15712, "mmcblk0", ["rockchip-npu"], ["xnnpack", "cpu"], "float"),
}


def test_every_fixture_tree_has_an_expectation() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_reports_its_board_accelerators_and_plan(name: str) -> None:
    board, cores, arch, memory_mb, root_disk, accelerators, backends, variant = EXPECTED[name]
    report = detect(FIXTURES / name)
    assert report.board.spec.key == board
    assert (report.cpu.cores, report.cpu.architecture, report.memory_mb) == (cores, arch, memory_mb)
    assert [d.name for d in report.storage if d.holds_root] == [root_disk]
    assert [a.spec.key for a in report.accelerators] == accelerators
    assert [str(b.kind) for b in report.plan.backends] == backends
    assert report.plan.variant == variant


def test_details_that_only_real_files_carry() -> None:
    nano = detect(FIXTURES / "jetson-nano")
    assert nano.board.detail == "L4T R32.7.1" and nano.cpu.model == "Cortex-A57"
    orin = detect(FIXTURES / "jetson-orin-nano")
    assert orin.board.detail.startswith("L4T R36") and orin.cpu.model == "Cortex-A78AE"
    assert {"asimddp", "asimdhp"} <= set(orin.cpu.features)
    rk = detect(FIXTURES / "rk3588")
    assert rk.board.model == "Radxa ROCK 5B" and rk.cpu.model == "Cortex-A55 + Cortex-A76"
    assert "runs RKNN models" in " ".join(rk.plan.notes)
    pc = detect(FIXTURES / "x86-pc")
    assert pc.board.model == "Intel(R) Client Systems NUC8i7HNK"
    assert "avx2" in pc.cpu.features and "avx512f" not in pc.cpu.features
    assert pc.plan.backends[0].threads == 4
    unprogrammed = detect(FIXTURES / "x86-pc-coral-usb-unprogrammed").accelerators[0]
    programmed = detect(FIXTURES / "x86-pc-coral-usb-programmed").accelerators[0]
    assert "1a6e:089a, firmware not loaded yet" in unprogrammed.detail
    assert "18d1:9302, firmware loaded" in programmed.detail
    hailo = detect(FIXTURES / "rpi5-hailo8l")
    assert hailo.accelerators[0].found_at == "/sys/bus/pci/devices/0000:01:00.0"
    assert "HEF models" in hailo.plan.notes[0]


@pytest.mark.parametrize("name", ["rpi5-hailo8l", "x86-pc-coral-usb-programmed"])
def test_the_command_line_reads_fixture_trees(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "hal", "--root", str(FIXTURES / name), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["board"]["key"] == EXPECTED[name][0]
    assert [a["key"] for a in report["accelerators"]] == EXPECTED[name][5]
    assert [b["backend"] for b in report["inference"]["backends"]] == EXPECTED[name][6]
