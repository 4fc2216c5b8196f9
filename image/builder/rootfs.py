"""Stage 10: the base root file system from Debian packages (mmdebstrap), our files, users and units."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from builder import boards, rpi
from builder.context import IMAGE_DIR, Build
from builder.host import run

OVERLAY = IMAGE_DIR / "rootfs"
UNITS = IMAGE_DIR / "systemd"
ENABLED = [
    "appliance-layout.service",
    "appliance-data.service",
    "appliance-provision.service",
    "appliance-safety.service",
    "appliance.service",
    "appliance-health.service",
    "appliance-update-commit.service",
    "appliance-update-request.path",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "ssh.service",
]
PARTLABEL = "/dev/disk/by-partlabel"
# Placeholders in overlay files, filled per build.
TEMPLATED = ["usr/lib/appliance/layout"]


def build_rootfs(b: Build, log: IO[str]) -> None:
    if b.rootfs.exists():
        shutil.rmtree(b.rootfs)
    dpkg_options = [
        f"--dpkgopt={line}"
        for line in (OVERLAY / "etc/dpkg/dpkg.cfg.d/appliance").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    kernel = b.board.kernel
    if b.board.kernel_suite != "bookworm":
        kernel = f"{kernel}/{b.board.kernel_suite}"
    packages = ",".join([*boards.COMMON_PACKAGES, kernel, *b.board.packages])
    run(
        [
            "mmdebstrap",
            "--mode=root",
            "--variant=minbase",
            f"--architectures={b.board.arch}",
            '--aptopt=APT::Install-Recommends "false"',
            *dpkg_options,
            f"--include={packages}",
            # initramfs hooks first: the kernel's package makes the initramfs as it installs
            f'--essential-hook=mkdir -p "$1/etc/initramfs-tools" && '
            f'cp -r {OVERLAY}/etc/initramfs-tools/. "$1/etc/initramfs-tools/"',
            *_arm64_initramfs(b),
            # raspi-firmware's kernel hook wants its folder (builder/rpi.py replaces what it writes)
            '--essential-hook=mkdir -p "$1/boot/firmware"',
            "bookworm",
            b.rootfs,
            *b.sources,
        ],
        log,
        env=b.env,
    )
    customize(b, log)


def _arm64_initramfs(b: Build) -> list[str]:
    """The ARM boards' initramfs takes a list of drivers (image/arm64/etc/initramfs-tools)."""
    if b.board.arch != "arm64":
        return []
    return [f'--essential-hook=cp -r {IMAGE_DIR}/arm64/etc/initramfs-tools/. "$1/etc/initramfs-tools/"']


def customize(b: Build, log: IO[str]) -> None:
    """Our files, users, the config template and units: all that makes Debian the appliance."""
    r = b.rootfs
    shutil.copytree(OVERLAY, r, dirs_exist_ok=True, symlinks=True)
    if b.board.boot == "rpi":
        rpi.customize_rootfs(b)
    _write_fstab(b)
    for name in TEMPLATED:
        path = r / name
        text = path.read_text()
        for key in ("LINUX_TYPE", "SLOT_B_GUID", "DATA_GUID"):
            text = text.replace(f"@{key}@", getattr(boards, key))
        path.write_text(text)
    for unit in UNITS.glob("*.service"):
        shutil.copy2(unit, r / "etc/systemd/system" / unit.name)
    chroot = ["chroot", r]
    run([*chroot, "groupadd", "--system", "gpio"], log)
    run(
        [
            *chroot,
            "useradd",
            "--system",
            "--user-group",
            "--home-dir",
            "/var/lib/appliance",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--groups",
            "gpio,dialout,video",
            "appliance",
        ],
        log,
    )
    run([*chroot, "useradd", "--user-group", "--create-home", "--shell", "/bin/bash", "admin"], log)
    for user in ("root", "admin"):  # no password on any account: SSH keys only
        run([*chroot, "usermod", "--password", "*", user], log)
    for host_key in (r / "etc/ssh").glob("ssh_host_*"):  # made per box on the first boot, on /data
        host_key.unlink()
    config = (IMAGE_DIR / "config/appliance.toml.in").read_text().replace("@STOP_LINE@", b.board.stop_line)
    (r / "usr/share/appliance").mkdir(parents=True, exist_ok=True)
    (r / "usr/share/appliance/appliance.toml").write_text(config)
    _replace_with_link(r / "etc/appliance", "/data/etc/appliance")
    for mount in ("data", b.board.boot_mount, "var/lib/appliance", "var/lib/appliance-update"):
        (r / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (r / "etc/hostname").write_text("appliance\n")
    (r / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    _replace_with_link(r / "etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")
    (r / "etc/machine-id").write_text("")  # empty: systemd's "uninitialized", bound over at boot
    _replace_with_link(r / "var/lib/dbus/machine-id", "/etc/machine-id")
    (r / "etc/default/locale").write_text("LANG=C.UTF-8\n")
    _write_rauc_config(b)
    run(["systemctl", f"--root={r}", "enable", *ENABLED], log)
    (r / "etc/appliance-release").write_text(f"VERSION={b.version}\nBOARD={b.board.name}\n")


def _replace_with_link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.symlink_to(target)


def _write_fstab(b: Build) -> None:
    """The boot partition the user may write (the ESP, or the Pi's autoboot.txt partition) in fstab."""
    fstab = b.rootfs / "etc/fstab"
    label = "esp" if b.board.boot == "efi" else "config"
    text = fstab.read_text().replace("@BOOT_PARTLABEL@", label)
    fstab.write_text(text.replace("@BOOT_MOUNT@", b.board.boot_mount))


def _write_rauc_config(b: Build) -> None:
    rauc = b.rootfs / "etc/rauc"
    rauc.mkdir(parents=True, exist_ok=True)
    shutil.copy2(b.keys / "ca.cert.pem", rauc / "keyring.pem")  # only the CA: signing keys stay off the box
    pi = b.board.boot == "rpi"
    bootloader = "bootloader=custom\n" if pi else "bootloader=grub\ngrubenv=/boot/efi/EFI/BOOT/grubenv\n"
    text = (
        "# RAUC: two root slots, A and B, on the partitions labelled rootfs_a and rootfs_b (docs/image.md).\n"
        "[system]\n"
        f"compatible={b.board.compatible}\n"
        f"{bootloader}"
        "statusfile=/data/rauc/status.raucs\n"
        "mountprefix=/run/rauc\n"
        "bundle-formats=-plain\n\n"
        "[keyring]\npath=/etc/rauc/keyring.pem\n\n"
    )
    if pi:
        text += "[handlers]\nbootloader-custom-backend=/usr/lib/appliance/rauc-tryboot\n\n"
    for i, slot in enumerate(("a", "b")):
        text += f"[slot.rootfs.{i}]\ndevice={PARTLABEL}/rootfs_{slot}\ntype=raw\nbootname={slot.upper()}\n\n"
        if pi:  # the slot's boot partition (kernel, device trees, cmdline.txt) goes with it
            text += f"[slot.boot.{i}]\ndevice={PARTLABEL}/boot_{slot}\ntype=vfat\nparent=rootfs.{i}\n\n"
    (rauc / "system.conf").write_text(text.rstrip("\n") + "\n")
