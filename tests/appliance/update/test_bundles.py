"""Bundles and their signatures with the real rauc 1.8 of the host: `rauc info` verifies against the keyring
and refuses a bundle signed by another CA; the updater's rauc wrapper reads what rauc says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance.update.rauc import Rauc, RaucError, parse_status, said
from tests.appliance.update.box import Box, Bundles


def info(bundle: Path, keyring: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rauc", "info", f"--keyring={keyring}", "--output-format=json", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_rauc_info_accepts_the_keyrings_bundle_and_refuses_one_signed_by_another_ca(bundles: Bundles) -> None:
    good = info(bundles.good, bundles.dev.ca)
    assert good.returncode == 0, good.stderr
    assert '"version":"2.0.1"' in good.stdout and '"compatible":"edge-appliance-test"' in good.stdout
    rogue = info(bundles.rogue, bundles.dev.ca)
    assert rogue.returncode == 1
    assert "signature verification failed" in rogue.stderr
    assert said(rogue.stderr).startswith("signature verification failed: Verify error:")
    # and the other way round: a box that trusts only the other CA refuses the dev bundle
    assert info(bundles.good, bundles.other.ca).returncode == 1
    assert info(bundles.rogue, bundles.other.ca).returncode == 0


def test_the_wrapper_reads_the_manifest_and_words_a_refusal(box: Box, bundles: Bundles) -> None:
    rauc = Rauc(box.rauc)  # its `info` is the real rauc, with the box's keyring
    bundle = rauc.info(bundles.good)
    assert (bundle.compatible, bundle.version) == ("edge-appliance-test", "2.0.1")
    with pytest.raises(RaucError, match=r"^signature verification failed: Verify error: unable to get local"):
        rauc.info(bundles.rogue)


def test_an_install_refused_for_its_signature_writes_no_slot(box: Box, bundles: Bundles) -> None:
    before = box.grubenv()
    steps: list[tuple[int, str]] = []
    with pytest.raises(RaucError, match="signature verification failed"):
        Rauc(box.rauc).install(bundles.rogue, lambda percent, step: steps.append((percent, step)))
    assert (40, "Verifying signature failed.") in steps
    assert box.grubenv() == before
    assert all("status" not in slot for slot in box.rauc_box()["slots"].values())


def test_status_is_read_from_rauc_1_8s_json() -> None:
    # `rauc status --detailed --output-format=json` of 1.8, as src/main.c's r_status_formatter_json writes it
    text = (
        '{"compatible":"edge-appliance-generic-amd64","variant":null,"booted":"B","boot_primary":"rootfs.0",'
        '"slots":[{"rootfs.1":{"class":"rootfs","device":"/dev/disk/by-partlabel/rootfs_b","type":"ext4",'
        '"bootname":"B","state":"booted","parent":null,"mountpoint":"/","boot_status":"bad","slot_status":'
        '{"bundle":{"compatible":"edge-appliance-generic-amd64","version":"2.0.1"},"checksum":{"sha256":'
        '"ab","size":1048576},"installed":{"timestamp":"2025-03-01T10:00:00Z","count":1},"activated":'
        '{"timestamp":"2025-03-01T10:00:01Z","count":1},"status":"ok"}}},{"rootfs.0":{"class":"rootfs",'
        '"device":"/dev/disk/by-partlabel/rootfs_a","type":"ext4","bootname":"A","state":"inactive",'
        '"parent":null,"mountpoint":null,"boot_status":"good","slot_status":{"bundle":{"compatible":null}}}}]}'
    )
    system = parse_status(text)
    booted = system.booted_slot
    assert booted is not None and booted.name == "rootfs.1" and booted.version == "2.0.1"
    assert booted.boot_status == "bad"  # in its trial: B_TRY=1 until marked good
    assert system.primary == "rootfs.0"
    fresh = system.slot("rootfs.0")
    assert fresh is not None and fresh.version is None and fresh.installed is None
    with pytest.raises(ValueError, match="list of slots"):
        parse_status('{"compatible":"x"}')
