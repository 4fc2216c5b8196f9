"""`appliance update FILE` and `--status` as real processes, on a box of two slots behind the stand-in rauc
(its signature checks are the real rauc's) and systemctl."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.appliance.update.box import Box, Bundles


def test_an_install_records_its_trial_and_reboots_into_the_new_slot(box: Box, bundles: Bundles) -> None:
    done = box.update(bundles.good)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert " 40% Verifying signature done." in lines and "100% Installing done." in lines
    assert "installed version 2.0.1 in rootfs.1 (B); it is tried at the next boot" in lines
    assert box.systemctl_calls() == [["reboot"]]
    assert box.grubenv() == {"ORDER": "B A", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "0"}
    trial = box.record("trial.json")
    assert trial is not None
    assert (trial["slot"], trial["bootname"], trial["version"]) == ("rootfs.1", "B", "2.0.1")
    assert (trial["from_slot"], trial["from_bootname"]) == ("rootfs.0", "A")
    assert trial["bundle"] == str(bundles.good) and trial["installed"] > 0
    assert trial["boot_id"] == box.boot_id_file.read_text().strip()
    outcome = box.record("outcome.json")
    assert outcome is not None and outcome["outcome"] == "installed" and outcome["version"] == "2.0.1"
    progress = box.record("progress.json")
    assert progress is not None
    assert (progress["state"], progress["percent"], progress["error"]) == ("installed", 100, None)
    slots = box.record("slots.json")
    assert slots is not None and slots["booted"] == "rootfs.0" and slots["primary"] == "rootfs.1"
    for name in ("trial.json", "outcome.json", "progress.json", "slots.json"):  # for the runtime to read
        assert (box.state_dir / name).stat().st_mode & 0o777 == 0o644


def test_no_reboot_installs_and_leaves_the_reboot_to_the_admin(box: Box, bundles: Bundles) -> None:
    done = box.update(bundles.good, "--no-reboot")
    assert done.returncode == 0, done.stderr
    assert box.systemctl_calls() == []
    assert box.grubenv()["ORDER"] == "B A"


def test_a_bundle_signed_by_another_ca_is_refused_and_nothing_is_written(box: Box, bundles: Bundles) -> None:
    before = box.rauc_box()
    done = box.update(bundles.rogue)
    assert done.returncode == 1
    assert (
        "appliance update: rauc refused the bundle: signature verification failed: "
        "Verify error: unable to get local issuer certificate"
    ) in done.stderr
    assert "nothing was installed" in done.stderr
    after = box.rauc_box()
    assert after["grubenv"] == before["grubenv"] and after["slots"] == before["slots"]
    assert box.rauc_calls() == before["calls"]  # no install, no mark
    assert box.systemctl_calls() == []
    assert box.record("trial.json") is None
    outcome = box.record("outcome.json")
    assert outcome is not None and outcome["outcome"] == "failed"
    assert outcome["message"].startswith("failed: rauc refused the bundle: signature verification failed")


def test_rauc_install_refusing_a_bundle_is_reported_with_its_last_error(box: Box, bundles: Bundles) -> None:
    done = box.update(bundles.foreign)  # signed right, for another product: `rauc install` refuses it
    assert done.returncode == 1
    assert " 60% Checking manifest contents failed." in done.stdout.splitlines()
    assert (
        "rauc install failed: Compatible mismatch: Expected 'edge-appliance-test' but bundle manifest has "
        "'someone-elses-product'"
    ) in done.stderr
    assert box.record("trial.json") is None and box.systemctl_calls() == []
    progress = box.record("progress.json")
    assert (
        progress is not None and progress["state"] == "failed" and "Compatible mismatch" in progress["error"]
    )


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_it_must_run_as_root(box: Box, bundles: Bundles) -> None:
    nobody = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")
    done = box.update(bundles.good, prefix=nobody)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(
        f"appliance update must run as root: sudo appliance update {bundles.good}"
    )
    assert box.rauc_calls() == [] and not box.state_dir.exists()


def test_a_missing_file_or_no_action_is_a_usage_error(box: Box) -> None:
    missing = box.update(box.folder / "nope.raucb")
    assert missing.returncode == 2 and f"{box.folder / 'nope.raucb'}: no such file" in missing.stderr
    nothing = box.update()
    assert nothing.returncode == 2 and "give one of FILE, --status" in nothing.stderr
    assert box.update("--commit", "--json").returncode == 2


def test_status_shows_the_slots_the_trial_and_the_last_outcome(box: Box, bundles: Bundles) -> None:
    assert box.update(bundles.good, "--no-reboot").returncode == 0
    text = box.update("--status")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "booted:  rootfs.0 (A), version unknown (as flashed)"
    assert lines[1] == "primary: rootfs.1 (B), version 2.0.1 (boots next)"
    assert any(
        line.startswith("  rootfs.1   B   inactive  good  version 2.0.1, installed ") for line in lines
    )
    assert any(line.startswith("update in trial: version 2.0.1 in rootfs.1 (B)") for line in lines)
    assert any(line.startswith("last update: installed version 2.0.1 in rootfs.1 (B)") for line in lines)
    doc = json.loads(box.update("--status", "--json").stdout)
    assert doc["rauc"]["booted"] == "rootfs.0" and doc["rauc"]["primary"] == "rootfs.1"
    assert {s["name"]: s["version"] for s in doc["rauc"]["slots"]} == {"rootfs.0": None, "rootfs.1": "2.0.1"}
    assert doc["trial"]["version"] == "2.0.1" and doc["outcome"]["outcome"] == "installed"
    assert doc["progress"]["state"] == "installed" and doc["progress"]["running"] is False
    assert doc["error"] is None
