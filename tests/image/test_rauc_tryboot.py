"""The Raspberry Pi's A/B switch: RAUC's custom backend over autoboot.txt and tryboot, and the bundle's
hook that makes a boot partition name its own root. Both are shell scripts run here as the box would,
with their files moved into a temporary folder (no Pi firmware on this machine: what the firmware does
with autoboot.txt is modelled by `next_boot` below, from its documentation)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "image"
BACKEND = IMAGE / "rpi/rootfs/usr/lib/appliance/rauc-tryboot"
HOOK = IMAGE / "rpi/bundle-hook"
SLOT_A_GUID = "00000000-0000-4000-8000-00000000000a"  # what image/build puts in for @SLOT_A_GUID@
SLOT_B_GUID = "00000000-0000-4000-8000-00000000000b"

AUTOBOOT = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"


class Box:
    """A Pi's files as the backend sees them, and its boots."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.autoboot = root / "config/autoboot.txt"
        self.autoboot.parent.mkdir()
        self.autoboot.write_text(AUTOBOOT)
        self.reboot_param = root / "run/systemd/reboot-param"
        self.cmdline = root / "cmdline"
        self.boot("A")

    def backend(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ["PATH"],
            "AUTOBOOT": str(self.autoboot),
            "STATE": str(self.root / "data/rauc/tryboot.state"),
            "REBOOT_PARAM": str(self.reboot_param),
            "CMDLINE": str(self.cmdline),
        }
        done = subprocess.run([BACKEND, *args], env=env, capture_output=True, text=True, timeout=30)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def ask(self, *args: str) -> str:
        return self.backend(*args).stdout.strip()

    def section(self, name: str) -> int:
        lines = self.autoboot.read_text().splitlines()
        start = lines.index(f"[{name}]")
        value = next(line for line in lines[start + 1 :] if line.startswith("boot_partition="))
        return int(value.split("=")[1])

    def next_boot(self) -> str:
        """What the firmware boots at a reset: [tryboot]'s partition if the kernel was asked for a
        tryboot (the reboot parameter reaches rpi_tryboot), else [all]'s. /run does not survive."""
        tryboot = self.reboot_param.exists() and "tryboot" in self.reboot_param.read_text()
        partition = self.section("tryboot" if tryboot else "all")
        slot = {2: "A", 3: "B"}[partition]
        self.boot(slot)
        return slot

    def boot(self, slot: str) -> None:
        self.reboot_param.unlink(missing_ok=True)
        self.reboot_param.parent.mkdir(parents=True, exist_ok=True)
        guid = SLOT_A_GUID if slot == "A" else SLOT_B_GUID
        self.cmdline.write_text(f"root=PARTUUID={guid} ro rauc.slot={slot}\n")

    def install_into(self, slot: str) -> None:
        """What RAUC asks of the backend around writing a slot: unbootable first, primary after."""
        self.backend("set-state", slot, "bad")
        self.backend("set-primary", slot)


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def test_a_fresh_box_boots_a_and_both_slots_count_as_good(box: Box) -> None:
    assert box.ask("get-primary") == "A"
    assert box.ask("get-state", "A") == "good"
    assert box.ask("get-state", "B") == "good"
    assert box.next_boot() == "A"


def test_an_installed_slot_is_tried_once_and_committed_only_by_its_good_mark(box: Box) -> None:
    box.install_into("B")
    assert box.section("all") == 2, "the committed slot must not change before the trial"
    assert box.section("tryboot") == 3
    assert box.reboot_param.read_text().strip() == "0 tryboot"
    assert box.ask("get-primary") == "B"
    assert box.ask("get-state", "B") == "good"

    assert box.next_boot() == "B"  # the trial boot
    assert box.ask("get-primary") == "A", "a reset in the trial must return to A"
    box.backend("set-state", "B", "good")  # `rauc status mark-good` after the health check
    assert (box.section("all"), box.section("tryboot")) == (3, 2)
    assert box.ask("get-primary") == "B"
    assert box.next_boot() == "B"
    assert box.next_boot() == "B"


def test_a_trial_that_fails_its_health_check_falls_back_to_the_committed_slot(box: Box) -> None:
    box.install_into("B")
    assert box.next_boot() == "B"
    box.backend("set-state", "B", "bad")  # `appliance update --fall-back`
    assert box.section("all") == 2
    assert box.ask("get-state", "B") == "bad"
    assert box.next_boot() == "A"
    box.backend("set-state", "A", "good")  # the commit service on A's boot: nothing moves
    assert (box.section("all"), box.ask("get-primary")) == (2, "A")


def test_a_power_cut_or_hang_during_the_trial_boots_the_committed_slot(box: Box) -> None:
    box.install_into("B")
    assert box.next_boot() == "B"
    # no mark at all: the watchdog or the power resets the board without the tryboot flag
    assert box.next_boot() == "A"
    assert box.section("all") == 2


def test_the_second_update_goes_into_the_slot_not_running(box: Box) -> None:
    box.install_into("B")
    box.next_boot()
    box.backend("set-state", "B", "good")
    box.install_into("A")
    assert (box.section("all"), box.section("tryboot")) == (3, 2)
    assert box.next_boot() == "A"
    box.backend("set-state", "A", "good")
    assert (box.section("all"), box.section("tryboot")) == (2, 3)


def test_every_boots_good_mark_leaves_autoboot_txt_untouched(box: Box) -> None:
    before = box.autoboot.stat()
    for _ in range(3):
        box.backend("set-state", "A", "good")
        box.backend("set-primary", "A")
    after = box.autoboot.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_marking_the_committed_slot_bad_hands_the_boot_to_the_other(box: Box) -> None:
    box.backend("set-state", "A", "bad")
    assert box.section("all") == 3
    assert box.next_boot() == "B"


def test_mistakes_are_refused_with_what_was_wrong(box: Box) -> None:
    done = box.backend("set-primary", "C", check=False)
    assert done.returncode == 1 and "unknown slot 'C'" in done.stderr
    done = box.backend("set-state", "A", "maybe", check=False)
    assert done.returncode == 1 and "good or bad" in done.stderr
    box.autoboot.write_text("[all]\nboot_partition=7\n")
    done = box.backend("get-primary", check=False)
    assert done.returncode == 1 and "boot_partition=7" in done.stderr
    box.autoboot.unlink()
    done = box.backend("get-primary", check=False)
    assert done.returncode == 1 and "config partition mounted" in done.stderr
    done = box.backend("frobnicate", check=False)
    assert done.returncode == 1 and "usage" in done.stderr


def _run_hook(tmp_path: Path, slot_name: str, cmdline: str) -> subprocess.CompletedProcess[str]:
    hook = tmp_path / "hook"
    hook.write_text(
        HOOK.read_text().replace("@SLOT_A_GUID@", SLOT_A_GUID).replace("@SLOT_B_GUID@", SLOT_B_GUID)
    )
    hook.chmod(0o755)
    boot = tmp_path / "mnt"
    boot.mkdir(exist_ok=True)
    (boot / "cmdline.txt").write_text(cmdline)
    (boot / "config.txt").write_text("# The Raspberry Pi firmware's settings for slot A (docs)\nx=1\n")
    env = {
        "PATH": os.environ["PATH"],
        "RAUC_SLOT_CLASS": "boot",
        "RAUC_SLOT_NAME": slot_name,
        "RAUC_SLOT_MOUNT_POINT": str(boot),
    }
    return subprocess.run([hook, "slot-post-install"], env=env, capture_output=True, text=True, timeout=30)


def test_the_bundle_hook_points_slot_bs_boot_partition_at_bs_root(tmp_path: Path) -> None:
    a_line = f"root=PARTUUID={SLOT_A_GUID} rootfstype=squashfs ro rauc.slot=A\n"
    done = _run_hook(tmp_path, "boot.1", a_line)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mnt/cmdline.txt").read_text() == (
        f"root=PARTUUID={SLOT_B_GUID} rootfstype=squashfs ro rauc.slot=B\n"
    )
    assert "settings for slot B" in (tmp_path / "mnt/config.txt").read_text()
    assert _run_hook(tmp_path, "boot.0", a_line).returncode == 0
    assert (tmp_path / "mnt/cmdline.txt").read_text() == a_line
    done = _run_hook(tmp_path, "boot.7", a_line)
    assert done.returncode == 1 and "unknown boot slot" in done.stderr
