"""The package's tree: the wheelhouse and its locks, the docs, the units, the default config, the udev rule,
and DEBIAN/ with control, conffiles, md5sums and the maintainer scripts."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from debbuild.host import DEB_DIR, REPO, BuildError, pyproject
from debbuild.wheels import Wheelhouse, lock_name, write_lock

PACKAGE = "edge-appliance"
CONFFILE = "etc/appliance/appliance.toml"
UNITS = ("appliance-safety.service", "appliance.service")
MOCK_LINE = '{ gpio = "mock", line = "STOP" }'
MOCK_NOTE = """\
# A mock line, so that the appliance starts on any box: it drives nothing. Once the stop output's relay is
# wired, name its line here, e.g. { gpio = "gpiod", chip = "gpiochip0", line = 17 }
# (/opt/appliance/docs/safety.md, hardware.md), check the file and restart both units.
"""
# The system libraries the wheels' native code links (ldd in a minimal Debian 12, tests/image/test_deb.py):
# those manylinux lets a wheel assume; libc6's version comes from the wheels' tags.
LIB_DEPENDS = ("libgcc-s1", "libstdc++6", "zlib1g")


def stage(root: Path, house: Wheelhouse, arch: str, version: str, maintainer: str) -> None:
    opt = root / "opt/appliance"
    (opt / "wheels").mkdir(parents=True)
    for wheel in house.wheels:
        shutil.copy2(wheel.path, opt / "wheels" / wheel.path.name)
    for python, wheels in house.locks.items():
        write_lock(opt / "wheels" / lock_name(python), python, arch, wheels)
    shutil.copytree(REPO / "docs", opt / "docs")
    units = root / "lib/systemd/system"
    units.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy2(REPO / "image/systemd" / unit, units / unit)  # unchanged
    (root / "lib/udev/rules.d").mkdir(parents=True)
    # the image's own rule: one file for both
    shutil.copy2(
        DEB_DIR.parent / "rootfs/etc/udev/rules.d/60-appliance-gpio.rules", root / "lib/udev/rules.d"
    )
    (root / "etc/appliance").mkdir(parents=True)
    (root / CONFFILE).write_text(default_config())
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/appliance").symlink_to("/opt/appliance/venv/bin/appliance")
    doc = root / "usr/share/doc" / PACKAGE
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(_copyright())
    _debian(root, house, arch, version, maintainer)


def default_config() -> str:
    """image/config/appliance.toml.in with a mock stop line, and a comment saying so."""
    text = (REPO / "image/config/appliance.toml.in").read_text()
    if text.count("@STOP_LINE@") != 1:
        raise BuildError("image/config/appliance.toml.in: expected one @STOP_LINE@")
    lines = text.replace("@STOP_LINE@", MOCK_LINE).splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("stop_line ="))
    text = "".join([*lines[:at], MOCK_NOTE, *lines[at:]])
    if leftover := re.search(r"@[A-Z_]+@", text):
        raise BuildError(f"image/config/appliance.toml.in: a placeholder left: {leftover[0]}")
    return text


def depends(house: Wheelhouse) -> str:
    pythons = sorted(house.locks, key=lambda v: tuple(map(int, v.split("."))))
    interpreters = [f"python3 (>= {pythons[0]}~)", *(f"python{v}" for v in pythons)]
    venvs = ["python3-venv", *(f"python{v}-venv" for v in pythons)]
    # systemd 247: the units' ProtectProc=invisible. deb-systemd-helper: init-system-helpers, Essential.
    names = [" | ".join(interpreters), " | ".join(venvs), "adduser", "systemd (>= 247)", *LIB_DEPENDS]
    if (glibc := house.glibc()) is not None:
        names.append(f"libc6 (>= {glibc[0]}.{glibc[1]})")
    return ", ".join(names)


def _debian(root: Path, house: Wheelhouse, arch: str, version: str, maintainer: str) -> None:
    project = pyproject()["project"]
    newest_first = sorted(house.locks, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
    debian = root / "DEBIAN"
    debian.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        text = (DEB_DIR / "maintainer" / script).read_text().replace("@PYTHONS@", " ".join(newest_first))
        (debian / script).write_text(text)
        (debian / script).chmod(0o755)
    (debian / "conffiles").write_text(f"/{CONFFILE}\n")
    _md5sums(root)
    control = {
        "Package": PACKAGE,
        "Version": version,
        "Architecture": arch,
        "Maintainer": maintainer,
        "Installed-Size": str(_size_kib(root)),
        "Depends": depends(house),
        "Recommends": "udev",
        "Section": "misc",
        "Priority": "optional",
        "Description": f"{_synopsis(project['description'])}\n{_description(newest_first)}",
    }
    (debian / "control").write_text("".join(f"{key}: {value}\n" for key, value in control.items()))


def _synopsis(text: str) -> str:
    """pyproject's description, cut at a comma to Debian's 80 columns."""
    while len(text) > 79 and "," in text:
        text = text.rsplit(",", 1)[0]
    return text


def _description(pythons: list[str]) -> str:
    text = f"""\
The software of an edge box beside a machine on a factory floor: Modbus and serial field devices,
camera quality control, a fail-safe stop output, a local store, tiered sync and a status page.
.
Its runtime and dependencies come as wheels (CPython {", ".join(pythons)}) and are installed into
/opt/appliance/venv when the package is configured, offline. Two systemd units run it as the user
appliance: appliance-safety.service and appliance.service. The config is
/etc/appliance/appliance.toml; the data is /var/lib/appliance (deleted on purge)."""
    return "\n".join(f" {line}" for line in text.splitlines())


def _md5sums(root: Path) -> None:
    lines = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] != "DEBIAN" and path.is_file() and not path.is_symlink():
            lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")
    (root / "DEBIAN/md5sums").write_text("".join(lines))


def _size_kib(root: Path) -> int:
    total = sum(os.lstat(p).st_size for p in root.rglob("*") if "DEBIAN" not in p.relative_to(root).parts[:1])
    return (total + 1023) // 1024


def _copyright() -> str:
    license_name = pyproject()["project"]["license"]
    return f"""\
{PACKAGE}: the edge appliance runtime.

License: {license_name}; on Debian systems its full text is in /usr/share/common-licenses/{license_name}.
The wheels in /opt/appliance/wheels, and the venv made from them, carry their own licenses in their
.dist-info folders.
"""
