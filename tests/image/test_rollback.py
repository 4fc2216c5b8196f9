"""The image's update matrix beyond the CI run (marked `rollback`: run with `-m rollback`, 20 minutes and
more under emulation): a power cut in the middle of an install boots the old slot, and an update whose
appliance fails its health check boots once, falls back, and says so."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.image.bundles import make_bundle
from tests.image.conftest import BOOT_TIMEOUT_S, Box, booted_and_good

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.rollback]

BROKEN_RUNTIME = "[Service]\nExecStart=\nExecStart=/bin/false\n"  # the runtime never comes up


def signed(box: Box, squashfs: Path, version: str, out: Path) -> Path:
    keys = box.image.keys
    return make_bundle(
        squashfs, version, keys / "signing.cert.pem", keys / "signing.key.pem", keys / "ca.cert.pem", out
    )


def test_a_power_cut_in_the_middle_of_an_install_boots_the_old_slot(box: Box, tmp_path: Path) -> None:
    bundle = signed(box, box.image.root_squashfs, "0.0.1+powercut", tmp_path / "cut.raucb")
    box.ssh("sudo sh -c 'cat > /data/cut.raucb'", stdin=bundle)
    box.ssh("sudo systemd-run --unit=cut-install appliance update /data/cut.raucb --no-reboot")
    deadline = time.monotonic() + 300
    while True:  # cut the power once RAUC writes the slot
        progress = box.ssh("cat /var/lib/appliance-update/progress.json 2>/dev/null || true")
        if "Copying" in progress or "Updating slots" in progress:
            break
        assert time.monotonic() < deadline, f"the install never started writing: {progress}"
        time.sleep(0.5)
    box.vm.kill()
    box.vm.start()
    box.vm.wait_api("/api/v1/status", box.credential, BOOT_TIMEOUT_S)
    status = box.update_status()
    assert status["rauc"]["booted"] == "rootfs.0", status
    slot_b = next(s for s in status["rauc"]["slots"] if s["name"] == "rootfs.1")
    assert slot_b["boot_status"] == "bad", status  # RAUC marks the target unbootable before it writes


def test_an_update_that_fails_its_health_check_boots_once_and_falls_back(box: Box, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["unsquashfs", "-q", "-no-progress", "-d", root, box.image.root_squashfs], check=True)
    dropin = root / "etc/systemd/system/appliance.service.d"
    dropin.mkdir(parents=True)
    (dropin / "broken.conf").write_text(BROKEN_RUNTIME)
    broken = tmp_path / "broken.squashfs"
    subprocess.run(
        ["mksquashfs", root, broken, "-comp", "gzip", "-noappend", "-no-progress", "-quiet"], check=True
    )
    bundle = signed(box, broken, "0.0.2+broken", tmp_path / "broken.raucb")
    box.ssh("sudo sh -c 'cat > /data/broken.raucb'", stdin=bundle)
    booted_before = box.update_status()["rauc"]["booted"]
    boots = box.vm.boots_seen()
    box.ssh("sudo appliance update /data/broken.raucb", check=False)  # reboots into the trial
    deadline = time.monotonic() + 1200  # the trial boot, its health check's timeout, the boot back
    while box.vm.boots_seen() < boots + 2:
        assert time.monotonic() < deadline, f"no fall back; the console's end:\n{box.vm.console()[-3000:]}"
        time.sleep(2)
    box.vm.wait_api("/api/v1/status", box.credential, BOOT_TIMEOUT_S)
    deadline = time.monotonic() + 300
    while not booted_and_good(status := box.update_status(), booted_before):
        assert time.monotonic() < deadline, f"the box did not come back on {booted_before}: {status}"
        time.sleep(2)
    assert status["outcome"]["outcome"] == "rolled back", status
