"""Stage 50: the signed RAUC update bundle: the same root slot image, for boxes already in the field."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from builder import boards
from builder.context import IMAGE_DIR, Build
from builder.host import run

LEAF_EXTENSIONS = "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"


def ensure_keys(keys: Path, log: IO[str]) -> bool:
    """A development PKI in `keys` unless one is there: a CA (its certificate is the image's keyring) and
    a signing certificate it issued. True if it was made now. Real fleets bring their own (--keys)."""
    ca, cert, key = keys / "ca.cert.pem", keys / "signing.cert.pem", keys / "signing.key.pem"
    if ca.exists() and cert.exists() and key.exists():
        return False
    keys.mkdir(parents=True, exist_ok=True)
    keys.chmod(0o700)
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:3072",
            "-nodes",
            "-days",
            "3650",
            "-keyout",
            keys / "ca.key.pem",
            "-out",
            ca,
            "-subj",
            "/O=Edge Appliance/CN=Development update CA",
        ],
        log,
    )
    run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:3072",
            "-nodes",
            "-keyout",
            key,
            "-out",
            keys / "signing.csr.pem",
            "-subj",
            "/O=Edge Appliance/CN=Development update signing",
        ],
        log,
    )
    (keys / "leaf.ext").write_text(LEAF_EXTENSIONS)
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            keys / "signing.csr.pem",
            "-CA",
            ca,
            "-CAkey",
            keys / "ca.key.pem",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            keys / "leaf.ext",
            "-out",
            cert,
        ],
        log,
    )
    return True


def bundle_name(b: Build) -> str:
    return f"appliance-{b.board.name}-{b.version}.raucb"


def pi_bundle_hook() -> str:
    text = (IMAGE_DIR / "rpi/bundle-hook").read_text()
    return text.replace("@SLOT_A_GUID@", boards.SLOT_A_GUID).replace("@SLOT_B_GUID@", boards.SLOT_B_GUID)


def build_bundle(b: Build, log: IO[str]) -> None:
    folder = b.work / "bundle"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    shutil.copy2(b.work / "rootfs.squashfs", folder / "rootfs.squashfs")
    manifest = (
        f"[update]\ncompatible={b.board.compatible}\nversion={b.version}\n"
        f"description=Edge appliance {b.version} for {b.board.name}\n\n"
        "[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.squashfs\n"
    )
    if b.board.boot == "rpi":  # the slot's boot partition too, made to name its own root by the hook
        shutil.copy2(b.work / "boot-a.vfat", folder / "boot.vfat")
        (folder / "hook").write_text(pi_bundle_hook())
        (folder / "hook").chmod(0o755)
        manifest += "\n[hooks]\nfilename=hook\n\n[image.boot]\nfilename=boot.vfat\nhooks=post-install\n"
    (folder / "manifest.raucm").write_text(manifest)
    for old in b.out.glob(f"appliance-{b.board.name}-*.raucb"):
        old.unlink()
    run(
        [
            "rauc",
            "bundle",
            "--cert",
            b.keys / "signing.cert.pem",
            "--key",
            b.keys / "signing.key.pem",
            "--keyring",
            b.keys / "ca.cert.pem",
            folder,
            b.out / bundle_name(b),
        ],
        log,
        env=b.env,
    )
    shutil.rmtree(folder)
