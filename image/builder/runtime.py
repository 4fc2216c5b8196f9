"""Stage 20: the runtime: a venv at /opt/appliance/venv with binary wheels for the board's architecture
and the appliance from a wheel of this checkout (no bench, no test tools)."""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import IO

from builder.context import REPO, Build
from builder.host import BuildError, chroot_mounts, run

VENV = "/opt/appliance/venv"
SHIPPED_PACKAGES = ["appliance*", "hal*", "drivers*"]  # pyproject.toml's list, without the bench


def build_runtime(b: Build, log: IO[str]) -> None:
    r = b.rootfs
    tmp = r / "tmp/runtime"
    if tmp.exists():
        shutil.rmtree(tmp)
    app_source(b.version, tmp / "app-src")
    (tmp / "requirements.txt").write_text("\n".join(runtime_requirements()) + "\n")
    # pip inside trusts what the host trusts (a site's own CA for its proxy, say), not only Debian's list.
    shutil.copy2(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"), tmp / "host-ca.crt")
    trust = "/tmp/runtime/host-ca.crt"  # requests prefers these variables to pip's own --cert
    env = {
        **b.env,
        **dict.fromkeys(("PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"), trust),
    }
    if (r / VENV.lstrip("/")).exists():
        shutil.rmtree(r / VENV.lstrip("/"))
    # pip runs inside the rootfs (under qemu-user for another architecture), so it picks the wheels
    # that this board's Python and glibc take, as it would on the box; binary wheels only.
    pip = ["chroot", r, f"{VENV}/bin/pip", "--disable-pip-version-check", "--no-cache-dir"]
    with chroot_mounts(r, network=True):
        run(["chroot", r, "python3", "-m", "venv", VENV], log, env=env)
        run(
            [*pip, "wheel", "--no-deps", "--wheel-dir", "/tmp/runtime/wheels", "/tmp/runtime/app-src"],
            log,
            env=env,
        )
        app = next((tmp / "wheels").glob("edge_appliance-*.whl"))
        run(
            [
                *pip,
                "install",
                "--only-binary=:all:",
                "--no-compile",
                f"/tmp/runtime/wheels/{app.name}",
                "-r",
                "/tmp/runtime/requirements.txt",
            ],
            log,
            env=env,
        )
        # The root is read-only: byte code must exist now. Hash-checked .pyc carry no build time.
        run(
            [
                "chroot",
                r,
                f"{VENV}/bin/python",
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                VENV,
            ],
            log,
            env=b.env,
        )
        freeze = run([*pip, "freeze"], log)
    shutil.rmtree(tmp)
    (b.out / "manifest").mkdir(exist_ok=True)
    (b.out / "manifest/python-packages.txt").write_text(freeze)
    link = r / "usr/local/bin/appliance"
    link.unlink(missing_ok=True)
    link.symlink_to(f"{VENV}/bin/appliance")
    docs = r / "opt/appliance/docs"
    if docs.exists():
        shutil.rmtree(docs)
    shutil.copytree(REPO / "docs", docs)


# Left out of the image: RPi.GPIO needs the Raspberry Pi kernel's /dev/gpiomem (Debian's kernel has none,
# and it knows no Pi 5), and has no binary wheel for aarch64. The image drives GPIO through libgpiod.
LEFT_OUT = ("rpi.gpio",)


def runtime_requirements() -> list[str]:
    """pyproject.toml's dependencies and the `device` extra (GPIO through libgpiod)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["device"]]
    return [r for r in wanted if not r.lower().startswith(LEFT_OUT)]


def app_source(version: str, src: Path) -> None:
    """A source tree of the runtime alone: this checkout's appliance, hal and drivers, at `version`."""
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("appliance", "hal", "drivers"):
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    shutil.copy2(REPO / "README.md", src / "README.md")
    pyproject = (REPO / "pyproject.toml").read_text()
    pyproject = re.sub(r'^version = ".*"$', f'version = "{version}"', pyproject, count=1, flags=re.M)
    include = "include = [" + ", ".join(f'"{p}"' for p in SHIPPED_PACKAGES) + "]"
    pyproject, found = re.subn(r"^include = \[.*\]$", include, pyproject, count=1, flags=re.M)
    if not found:
        raise BuildError("pyproject.toml: no [tool.setuptools.packages.find] include list to narrow")
    (src / "pyproject.toml").write_text(pyproject)
