"""RAUC bundles for the image tests, made from a build's root squashfs: signed by the build's keys with
another version (a good update), or by a CA the box does not trust (a rogue one). Keys made here live in
the test's temporary folder only."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

COMPATIBLE = "edge-appliance-generic-amd64"


def make_pki(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """(ca cert, signing cert, signing key): a CA and a leaf it signed, as image/build makes them."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "sign.key", "sign.csr", "sign.pem")
    )
    openssl = ["openssl"]
    subprocess.run(
        [
            *openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-subj",
            f"/CN={name} CA",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *openssl,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            f"/CN={name} signing",
        ],
        check=True,
        capture_output=True,
    )
    (folder / "leaf.ext").write_text("basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n")
    subprocess.run(
        [
            *openssl,
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            folder / "leaf.ext",
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return ca, cert, key


def make_bundle(squashfs: Path, version: str, cert: Path, key: Path, ca: Path, out: Path) -> Path:
    folder = out.parent / f"{out.stem}-content"
    folder.mkdir(parents=True)
    try:
        (folder / "rootfs.squashfs").hardlink_to(squashfs)
    except OSError:  # another file system
        shutil.copy2(squashfs, folder / "rootfs.squashfs")
    (folder / "manifest.raucm").write_text(
        f"[update]\ncompatible={COMPATIBLE}\nversion={version}\n\n"
        "[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.squashfs\n"
    )
    subprocess.run(
        ["rauc", "bundle", "--cert", cert, "--key", key, "--keyring", ca, folder, out],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(folder)
    return out


def tiny_squashfs(folder: Path) -> Path:
    """A root slot image of one file: enough for a bundle that must be refused for its signature (RAUC
    checks that before anything else), and quick to copy into a VM."""
    content = folder / "tiny-root"
    content.mkdir(parents=True)
    (content / "README").write_text("not a root file system\n")
    (content / "noise").write_bytes(random.Random(7).randbytes(64 << 10))  # RAUC wants more than 4 KiB
    out = folder / "tiny.squashfs"
    subprocess.run(["mksquashfs", content, out, "-noappend", "-no-progress"], check=True, capture_output=True)
    return out
