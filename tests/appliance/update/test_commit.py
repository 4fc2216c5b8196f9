"""After the reboot: `appliance update --commit` commits a healthy trial or reports GRUB's fallback;
`--fall-back REASON` gives up on a trial whose health check failed. Boots are simulated: GRUB's choice by
the grubenv (RAUC's GRUB scheme) and a new boot id."""

from __future__ import annotations

import json

from appliance.update.state import boot_id
from tests.appliance.update.box import Box, Bundles


def installed(box: Box, bundles: Bundles) -> None:
    done = box.update(bundles.good)
    assert done.returncode == 0, done.stderr


def test_a_trial_that_comes_up_healthy_is_committed(box: Box, bundles: Bundles) -> None:
    installed(box, bundles)
    assert box.boot() == "B"
    assert box.grubenv()["B_TRY"] == "1"  # the try is used up unless marked good
    done = box.update("--commit")
    assert done.returncode == 0, done.stderr
    assert "committed version 2.0.1 in rootfs.1 (B)" in done.stdout
    assert ["status", "mark-good", "booted"] in box.rauc_calls()
    assert box.grubenv() == {"ORDER": "B A", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "0"}
    outcome = box.record("outcome.json")
    assert outcome is not None
    assert (outcome["outcome"], outcome["message"]) == ("committed", "committed version 2.0.1")
    assert box.record("trial.json") is None
    slots = box.record("slots.json")
    assert slots is not None and slots["booted"] == slots["primary"] == "rootfs.1"
    assert box.boot() == "B"  # and it stays


def test_a_trial_that_hangs_is_left_by_grub_and_reported_as_rolled_back(box: Box, bundles: Bundles) -> None:
    installed(box, bundles)
    assert box.boot() == "B"  # hangs: no commit, the watchdog resets the box
    assert box.boot() == "A"  # B's try is used up
    done = box.update("--commit")
    assert done.returncode == 0, done.stderr
    assert "version 2.0.1 in rootfs.1 did not come up: back on rootfs.0 (A)" in done.stdout
    assert ["status", "mark-bad", "rootfs.1"] in box.rauc_calls()
    assert box.grubenv()["B_OK"] == "0" and box.grubenv()["A_TRY"] == "0"
    outcome = box.record("outcome.json")
    assert outcome is not None and outcome["outcome"] == "rolled back"
    assert outcome["message"] == "rolled back: the new slot did not come up"
    assert (outcome["slot"], outcome["version"], outcome["running"]) == ("rootfs.1", "2.0.1", "rootfs.0")
    assert box.record("trial.json") is None
    assert box.boot() == "A"


def test_a_failed_health_check_falls_back_with_its_reason(box: Box, bundles: Bundles) -> None:
    installed(box, bundles)
    assert box.boot() == "B"
    health = {
        "healthy": False,
        "boot_id": box.boot_id_file.read_text().strip(),
        "checks": [{"name": "systemd", "ok": False, "detail": "appliance.service is failed"}],
    }
    (box.state_dir / "health.json").write_text(json.dumps(health))  # as `appliance health --save` leaves it
    done = box.update("--fall-back", "the health check failed")
    assert done.returncode == 0, done.stderr
    assert ["status", "mark-bad", "booted"] in box.rauc_calls()
    assert box.systemctl_calls()[-1] == ["reboot"]
    outcome = box.record("outcome.json")
    assert outcome is not None and outcome["message"] == "rolled back: the health check failed"
    assert outcome["failed_checks"] == ["systemd: appliance.service is failed"]
    assert box.record("trial.json") is None
    assert box.boot() == "A"
    after = box.update("--commit")  # the old slot's boot: marked good, the outcome stays
    assert after.returncode == 0 and "no update waiting" in after.stdout
    outcome = box.record("outcome.json")
    assert outcome is not None and outcome["message"] == "rolled back: the health check failed"


def test_fall_back_outside_a_trial_boot_marks_nothing_bad(box: Box, bundles: Bundles) -> None:
    done = box.update("--fall-back", "the health check failed", "--no-reboot")
    assert done.returncode == 0, done.stderr
    assert "nothing to fall back to" in done.stdout
    assert not any(call[:2] == ["status", "mark-bad"] for call in box.rauc_calls())
    installed(box, bundles)  # installed, not rebooted yet: this boot is still the old slot's
    assert box.update("--fall-back", "the health check failed", "--no-reboot").returncode == 0
    assert box.grubenv()["A_OK"] == "1" and box.record("trial.json") is not None


def test_a_commit_before_the_reboot_keeps_the_trial(box: Box, bundles: Bundles) -> None:
    installed(box, bundles)
    done = box.update("--commit")
    assert done.returncode == 0, done.stderr
    assert "version 2.0.1 in rootfs.1 waits for a reboot to be tried" in done.stdout
    assert box.record("trial.json") is not None
    outcome = box.record("outcome.json")
    assert outcome is not None and outcome["outcome"] == "installed"


def test_no_install_over_the_slot_to_fall_back_to_during_a_trial(box: Box, bundles: Bundles) -> None:
    installed(box, bundles)
    assert box.boot() == "B"
    done = box.update(bundles.newer, "--no-reboot")
    assert done.returncode == 1
    assert "this boot is the trial of version 2.0.1 in rootfs.1 (B), not yet committed" in done.stderr
    assert [call[0] for call in box.rauc_calls()].count("install") == 1  # the first one only
    assert box.update("--commit").returncode == 0
    again = box.update(bundles.newer, "--no-reboot")  # committed: A is the other slot now
    assert again.returncode == 0, again.stderr
    trial = box.record("trial.json")
    assert trial is not None and (trial["slot"], trial["version"], trial["from_slot"]) == (
        "rootfs.0",
        "2.1.0",
        "rootfs.1",
    )


def test_the_boot_id_is_the_kernels_unless_a_test_stands_in() -> None:
    assert boot_id() is not None
