"""The .deb (image/deb/build, docs/install-deb.md): built for amd64 and CPython 3.11, then installed without a
network into a minimal Debian 12 chroot, run, reinstalled, removed and purged.

Needs root, mmdebstrap, unshare, and a Debian mirror: the host's apt one or $APPLIANCE_TEST_DEBIAN_MIRROR.
The chroot is kept as a tarball in /tmp/edge-appliance-deb-test, keyed by what made it; pip caches the wheels.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path("/tmp/edge-appliance-deb-test")
SUITE = "bookworm"
# The package's Depends on Debian 12; libc6, libgcc-s1, libstdc++6 and zlib1g are in minbase already.
INCLUDE = ["python3", "python3-venv", "adduser", "systemd"]
VENV = "/opt/appliance/venv"
CHROOT_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "HOME=/root"]
CHROOT_ENV += ["DEBIAN_FRONTEND=noninteractive"]
UNITS = "/lib/systemd/system/appliance-safety.service /lib/systemd/system/appliance.service"
# ai-edge-litert's optional accelerator plugins link the vendors' SDKs (OpenVINO, Qualcomm QNN), which a box
# with that accelerator brings; nothing loads them otherwise.
OPTIONAL_NATIVE = "/ai_edge_litert/vendors/"


def debian_mirror() -> str:
    """The mirror the host's apt takes SUITE from (else its first Debian one); never a name written here."""
    if mirror := os.environ.get("APPLIANCE_TEST_DEBIAN_MIRROR"):
        return mirror
    sources: list[tuple[str, list[str]]] = []  # (uri, suites)
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and fields.get("URIs"):
                sources.append((fields["URIs"].split()[0], fields.get("Suites", "").split()))
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.is_file():
            for uri, suite in re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", path.read_text(), re.M):
                sources.append((uri, [suite]))
    for uri, suites in sources:
        if SUITE in suites:
            return uri
    for uri, _ in sources:
        if "debian" in uri and not uri.rstrip("/").endswith("-security"):
            return uri
    pytest.fail("no Debian mirror in the host's apt sources: set APPLIANCE_TEST_DEBIAN_MIRROR")


@pytest.fixture(scope="module")
def host() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: mmdebstrap --mode=root, chroot, unshare")
    missing = [tool for tool in ("mmdebstrap", "dpkg-deb", "unshare", "chroot") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing host tools {missing}: apt-get install mmdebstrap dpkg util-linux coreutils")


@pytest.fixture(scope="module")
def deb(host: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    build = [sys.executable, str(ROOT / "image/deb/build"), f"--out={out}", "--arch=amd64", "--python=3.11"]
    result = subprocess.run(build, capture_output=True, text=True)
    log = out / "build-deb.log"
    tail = log.read_text()[-3000:] if log.exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{tail}"
    (path,) = out.glob("edge-appliance_*_amd64.deb")
    return path


@pytest.fixture(scope="module")
def chroot_tar(host: None) -> Path:
    """A minimal Debian 12 with the package's Depends, made once and kept in CACHE."""
    mirror = debian_mirror()
    version = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True).stdout.strip()
    key = hashlib.sha256(repr((SUITE, mirror, INCLUDE, "minbase", version)).encode()).hexdigest()[:16]
    tar = CACHE / f"{SUITE}-{key}.tar"
    if not tar.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tar.with_suffix(".partial.tar")
        cmd = ["mmdebstrap", "--quiet", "--mode=root", "--variant=minbase", f"--include={','.join(INCLUDE)}"]
        result = subprocess.run([*cmd, SUITE, partial, mirror], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        partial.rename(tar)
    return tar


class Box:
    """The extracted chroot; commands run in it as root without a network, /proc and /dev/pts mounted in a
    mount namespace of their own (gone when the command ends)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        mounts = "mount -t proc proc /proc && mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts"
        cmd = ["unshare", "--net", "--mount", "--fork", "--", "chroot", str(self.root), "/usr/bin/env", "-i"]
        cmd += [*CHROOT_ENV, "/bin/sh", "-c", f"{mounts} && {script}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if check:
            assert result.returncode == 0, f"$ {script}\n{result.stdout}\n{result.stderr}"
        return result

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")


@pytest.fixture
def box(chroot_tar: Path, deb: Path, tmp_path: Path) -> Iterator[Box]:
    """The chroot on a tmpfs of its own: quick to fill (the venv is 400 MB) and gone at once with umount."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3g,mode=0755", "tmpfs", root], check=True)
    try:
        subprocess.run(["tar", "-C", root, "-xpf", chroot_tar], check=True)
        shutil.copy2(deb, root / "tmp" / deb.name)
        yield Box(root)
    finally:
        subprocess.run(["umount", "--lazy", root], check=True)


def test_markers_are_judged_for_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip judges markers by the Python that runs it; the build judges them for each target itself."""
    monkeypatch.syspath_prepend(str(ROOT / "image/deb"))
    from debbuild.pep508 import Requirement, target_env

    arm, x86_313 = target_env("3.11", "aarch64"), target_env("3.13", "x86_64")
    rpi = Requirement.parse("RPi.GPIO>=0.7; platform_machine == 'armv7l' or platform_machine == 'aarch64'")
    assert rpi.for_pip() == "rpi-gpio>=0.7"
    assert rpi.applies(arm) and not rpi.applies(x86_313)
    backport = Requirement.parse('typing_extensions>=4.6; python_version < "3.13"')
    assert backport.applies(arm) and not backport.applies(x86_313)
    device = Requirement.parse('gpiod (>=2.1) ; extra == "device"')
    assert device.for_pip() == "gpiod>=2.1"
    assert not device.applies(arm) and device.applies(arm, frozenset({"device"}))


@pytest.mark.image
@pytest.mark.slow
def test_package_metadata_and_contents(deb: Path, tmp_path: Path) -> None:
    info = subprocess.run(["dpkg-deb", "--info", deb], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"^ ([\w-]+): (.*)$", info, re.M))
    assert fields["Package"] == "edge-appliance"
    assert fields["Architecture"] == "amd64"
    assert re.fullmatch(r"\d+\.\d+\.\d+\+g[0-9a-f]{7}(\.dirty)?", fields["Version"])
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert depends[:4] == [
        "python3 (>= 3.11~) | python3.11",
        "python3-venv | python3.11-venv",
        "adduser",
        "systemd (>= 247)",
    ]
    assert {"libgcc-s1", "libstdc++6", "zlib1g"} <= set(depends)
    assert any(d.startswith("libc6 (>= 2.") for d in depends)
    for script in ("postinst", "prerm", "postrm", "conffiles", "md5sums"):
        assert f" {script} " in info

    subprocess.run(["dpkg-deb", "--raw-extract", deb, tmp_path / "x"], check=True)
    x = tmp_path / "x"
    assert (x / "DEBIAN/conffiles").read_text() == "/etc/appliance/appliance.toml\n"
    assert "@PYTHONS@" not in (x / "DEBIAN/postinst").read_text()
    for unit in ("appliance-safety.service", "appliance.service"):  # shipped unchanged
        assert (x / "lib/systemd/system" / unit).read_bytes() == (ROOT / "image/systemd" / unit).read_bytes()
    config = (x / "etc/appliance/appliance.toml").read_text()
    assert 'stop_line = { gpio = "mock", line = "STOP" }' in config
    assert "# A mock line" in config
    assert not re.search(r"@[A-Z_]+@", config)
    rule = (x / "lib/udev/rules.d/60-appliance-gpio.rules").read_text()
    assert 'KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' in rule
    assert os.readlink(x / "usr/bin/appliance") == f"{VENV}/bin/appliance"
    assert (x / "opt/appliance/docs/install-deb.md").is_file()

    wheels = x / "opt/appliance/wheels"
    lock = (wheels / "lock-cp311.txt").read_text()
    pinned = dict(re.findall(r"^([\w.-]+)==(\S+) --hash=sha256:[0-9a-f]{64}", lock, re.M))
    assert pinned["edge-appliance"] == fields["Version"]
    assert {"numpy", "opencv-python-headless", "ai-edge-litert", "gpiod", "pydantic"} <= set(pinned)
    assert "rpi-gpio" not in pinned and "tensorflow-cpu" not in pinned and "pytest" not in pinned
    shipped = {p.name for p in wheels.glob("*.whl")}
    assert len(shipped) == len(pinned)
    (app,) = wheels.glob("edge_appliance-*.whl")
    with zipfile.ZipFile(app) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
        assert "appliance/web/static/index.html" in wheel.namelist()
    assert {"appliance", "hal", "drivers"} <= tops
    assert not tops & {"bench", "tests", "examples"}


@pytest.mark.image
@pytest.mark.slow
def test_offline_install_run_reinstall_remove_purge(box: Box, deb: Path) -> None:
    package = f"/tmp/{deb.name}"
    # Installed as on a box, but with no network at all: only lo in the namespace.
    result = box.run(f"cat /proc/net/dev && apt-get install -y {package}")
    assert re.findall(r"^\s*(\w+):\s+\d", result.stdout, re.M) == ["lo"]
    assert "installing the runtime for Python 3.11" in result.stdout

    # The runtime runs: the default config checks, the hardware report answers.
    box.run(f"{VENV}/bin/appliance check-config /etc/appliance/appliance.toml")
    box.run("appliance check-config /etc/appliance/appliance.toml")  # /usr/bin/appliance
    hal = box.run(f"{VENV}/bin/appliance hal --json").stdout
    assert '"architecture": "x86_64"' in hal
    box.run(f"{VENV}/bin/python -c 'import ai_edge_litert.interpreter, gpiod, cv2, appliance, hal, drivers'")
    absent = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('bench', 'tests')))"
    box.run(f'{VENV}/bin/python -c "{absent}"')
    assert list(box.path(f"{VENV}/lib/python3.11/site-packages/appliance/__pycache__").glob("*.pyc"))
    box.run("dpkg --verify edge-appliance")

    # Every native library the wheels load is on the system (their Depends), except the optional plugins'.
    ldd = box.run(f"find {VENV} -name '*.so*' -type f -exec ldd {{}} + 2>&1").stdout
    missing, current = [], ""
    for line in ldd.splitlines():
        if line.endswith(":") and not line.startswith("\t"):
            current = line
        elif "not found" in line and OPTIONAL_NATIVE not in current:
            missing.append(f"{current} {line.strip()}")
    assert not missing, "\n".join(missing)

    # The user and groups, the data directory, the admin credential (when the runtime has the command).
    user = box.run("id appliance && getent passwd appliance").stdout
    for group in ("appliance", "gpio", "dialout", "video"):
        assert f"({group})" in user
    assert ":/var/lib/appliance:/usr/sbin/nologin" in user
    data = box.path("/var/lib/appliance")
    assert data.stat().st_mode & 0o777 == 0o700
    has_credential = box.run(f"{VENV}/bin/appliance credential --help", check=False).returncode == 0
    credential = box.path("/root/admin-credential.txt")
    assert credential.exists() == has_credential
    if has_credential:
        assert credential.stat().st_mode & 0o777 == 0o600
    secret = credential.read_bytes() if has_credential else b""

    # The units, enabled (nothing starts them: no systemd runs in a chroot) and valid here.
    wants = box.path("/etc/systemd/system/multi-user.target.wants")
    assert {"appliance.service", "appliance-safety.service"} <= {p.name for p in wants.iterdir()}
    box.run(f"systemd-analyze verify {UNITS}")

    # A reinstall (the upgrade path: prerm upgrade, a new venv) keeps the credential and the data.
    box.run(f"apt-get install -y --reinstall {package}")
    box.run(f"{VENV}/bin/appliance check-config /etc/appliance/appliance.toml")
    assert (credential.read_bytes() if has_credential else b"") == secret

    # remove: the software goes; the config and the data stay.
    box.run("apt-get remove -y edge-appliance")
    assert not box.path("/opt/appliance").exists() and not box.path("/usr/bin/appliance").is_symlink()
    assert box.path("/etc/appliance/appliance.toml").is_file() and data.is_dir()
    assert box.run("dpkg-query -W -f '${db:Status-Abbrev}' edge-appliance").stdout.strip() == "rc"

    # purge: the config, the data, the credential and the units' links go; the system user stays.
    box.run("apt-get purge -y edge-appliance")
    for gone in ("/etc/appliance", "/var/lib/appliance", "/root/admin-credential.txt", "/opt/appliance"):
        assert not box.path(gone).exists(), gone
    links = box.run("find /etc/systemd/system -name 'appliance*'").stdout
    assert links == ""
    assert box.run("dpkg-query -W edge-appliance", check=False).returncode != 0
    box.run("id appliance")
