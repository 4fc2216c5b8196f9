"""Test helpers for updates: signed bundles made with real openssl and rauc, and a box of two slots behind
the stand-ins for `rauc` and `systemctl` (standin_rauc.py, standin_systemctl.py), with GRUB's choice of a
slot at each simulated boot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

HERE = Path(__file__).resolve().parent
COMPATIBLE = "edge-appliance-test"
UNITS = ("appliance.service", "appliance-safety.service")


@dataclass(frozen=True)
class Signer:
    ca: Path  # what a box's keyring holds
    cert: Path
    key: Path


@dataclass(frozen=True)
class Bundles:
    dev: Signer
    other: Signer  # a CA no box trusts
    good: Path  # version 2.0.1, signed by the dev CA
    newer: Path  # version 2.1.0, signed by the dev CA
    rogue: Path  # version 6.6.6, signed by the other CA
    foreign: Path  # signed by the dev CA, for another product (compatible)


def tools_missing() -> str | None:
    missing = [tool for tool in ("rauc", "mksquashfs", "openssl") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (Debian: apt-get install rauc squashfs-tools openssl)"
    return None


def _run(*args: str | Path) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))}: {done.stderr}"


def make_signer(folder: Path, name: str) -> Signer:
    """A CA and a signing certificate it issued, as a product's release PKI would (test keys, made now)."""
    folder.mkdir(parents=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr, ext = folder / "signer.pem", folder / "signer.key", folder / "signer.csr", folder / "ext"
    _run(*("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"), "-keyout", ca_key,
         "-out", ca, "-subj", f"/O=Test/CN={name} update CA")  # fmt: skip
    _run(*("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key), "-out", csr,
         "-subj", f"/O=Test/CN={name} signer")  # fmt: skip
    ext.write_text("basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _run(*("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"),
         "-days", "3650", "-extfile", ext, "-out", cert)  # fmt: skip
    return Signer(ca, cert, key)


def make_bundle(folder: Path, signer: Signer, version: str, compatible: str = COMPATIBLE) -> Path:
    """A verity bundle of a small root file system image, signed by `signer`, built by the real rauc."""
    content = folder / f"content-{version}-{compatible}"
    content.mkdir(parents=True)
    (content / "rootfs.ext4").write_bytes(os.urandom(256 * 1024))
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n"
        "[image.rootfs]\nfilename=rootfs.ext4\n"
    )
    bundle = folder / f"appliance-{version}-{compatible}.raucb"
    _run(
        "rauc", "--cert", signer.cert, "--key", signer.key, "--keyring", signer.ca, "bundle", content, bundle
    )
    return bundle


def make_bundles(folder: Path) -> Bundles:
    dev, rogue = make_signer(folder / "dev", "dev"), make_signer(folder / "rogue", "rogue")
    return Bundles(
        dev=dev,
        other=rogue,
        good=make_bundle(folder, dev, "2.0.1"),
        newer=make_bundle(folder, dev, "2.1.0"),
        rogue=make_bundle(folder, rogue, "6.6.6"),
        foreign=make_bundle(folder, dev, "2.0.1", "someone-elses-product"),
    )


def script(path: Path, target: Path, env: dict[str, str]) -> Path:
    """An executable that runs `target` with this interpreter and `env`."""
    exports = "".join(f"export {k}='{v}'\n" for k, v in env.items())
    path.write_text(f"#!/bin/sh\n{exports}exec '{sys.executable}' '{target}' \"$@\"\n")
    path.chmod(0o755)
    return path


def systemctl(folder: Path, units: dict[str, str] | None = None) -> tuple[Path, Path]:
    """(the stand-in systemctl, its state file) with `units` in the given states (default: both active)."""
    state = folder / "systemctl.json"
    state.write_text(json.dumps({"units": units or dict.fromkeys(UNITS, "active"), "calls": []}))
    return script(
        folder / "systemctl", HERE / "standin_systemctl.py", {"STANDIN_SYSTEMCTL_STATE": str(state)}
    ), state


def grub_boot(env: dict[str, str]) -> str:
    """The slot GRUB boots, and the variables it saves on the way (RAUC's GRUB scheme, image/NOTES.md 5.2):
    the first slot of ORDER with X_OK=1 and X_TRY=0, each slot looked at getting X_TRY=1; if none, the
    tries of good slots are forgotten and the first slot still OK boots."""
    order = env["ORDER"].split()
    for slot in order:
        ok, tried = env.get(f"{slot}_OK") == "1", env.get(f"{slot}_TRY") != "0"
        env[f"{slot}_TRY"] = "1"
        if ok and not tried:
            return slot
    for slot in order:
        if env.get(f"{slot}_OK") == "1":
            env[f"{slot}_TRY"] = "0"
    return next((s for s in order if env.get(f"{s}_OK") == "1"), order[0])


class Box:
    """Two root slots, A (rootfs.0, booted) and B (rootfs.1), fresh from the flash: no RAUC status yet."""

    def __init__(self, folder: Path, keyring: Path) -> None:
        self.folder = folder
        self.state_dir = folder / "update-state"
        self.rauc_state = folder / "rauc.json"
        self.boot_id_file = folder / "boot_id"
        self.boot_id_file.write_text(f"{uuid.uuid4()}\n")
        slots = {
            "rootfs.0": {"bootname": "A", "device": "/dev/disk/by-partlabel/rootfs_a"},
            "rootfs.1": {"bootname": "B", "device": "/dev/disk/by-partlabel/rootfs_b"},
        }
        grubenv = {"ORDER": "A B", "A_OK": "1", "B_OK": "1", "A_TRY": "0", "B_TRY": "0"}
        self.rauc_state.write_text(
            json.dumps(
                {"compatible": COMPATIBLE, "booted": "A", "slots": slots, "grubenv": grubenv, "calls": []}
            )
        )
        env = {"RAUC_STANDIN_STATE": str(self.rauc_state), "RAUC_STANDIN_KEYRING": str(keyring)}
        self.rauc = script(folder / "rauc", HERE / "standin_rauc.py", env)
        self.systemctl, self.systemctl_state = systemctl(folder)
        self.boot()  # the first boot: A, committed as every boot is (`appliance update --commit`)
        self._save(lambda data: data["grubenv"].update(A_TRY="0"))

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "APPLIANCE_BOOT_ID_FILE": str(self.boot_id_file), "PYTHONUNBUFFERED": "1"}

    def update(self, *args: str | Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """`appliance update ARGS` with this box's rauc, systemctl and state directory."""
        command = [sys.executable, "-P", "-m", "appliance", "update", *map(str, args)]
        tools = [
            "--rauc",
            str(self.rauc),
            "--state-dir",
            str(self.state_dir),
            "--systemctl",
            str(self.systemctl),
        ]
        return subprocess.run(
            [*prefix, *command, *tools], capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=120
        )

    def rauc_box(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.rauc_state.read_text())
        return data

    def grubenv(self) -> dict[str, str]:
        return dict(self.rauc_box()["grubenv"])

    def rauc_calls(self) -> list[list[str]]:
        return [c for c in self.rauc_box()["calls"] if c[:1] != ["info"]]

    def systemctl_calls(self) -> list[list[str]]:
        calls: list[list[str]] = json.loads(self.systemctl_state.read_text())["calls"]
        return calls

    def record(self, name: str) -> dict[str, Any] | None:
        path = self.state_dir / name
        return json.loads(path.read_text()) if path.exists() else None

    def _save(self, change: Any) -> None:
        data = self.rauc_box()
        change(data)
        self.rauc_state.write_text(json.dumps(data))

    def boot(self) -> str:
        """A reset: GRUB picks a slot by the grubenv; a new boot id. The slot's bootname."""

        def choose(data: dict[str, Any]) -> None:
            data["booted"] = grub_boot(data["grubenv"])

        self._save(choose)
        self.boot_id_file.write_text(f"{uuid.uuid4()}\n")
        booted: str = self.rauc_box()["booted"]
        return booted
