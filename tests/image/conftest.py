"""Fixtures of the image tests: one generic-amd64 build per session (image/build, as root), and a box:
that image booted in QEMU with the bench's Modbus device on the host."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.image.vm import GUEST_HOST, Vm, free_port, prepare_disk

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuiltImage:
    out: Path

    @property
    def report(self) -> dict[str, object]:
        return dict(json.loads((self.out / "manifest/build.json").read_text()))

    @property
    def disk(self) -> Path:
        return self.out / str(self.report["image"])

    @property
    def bundle(self) -> Path:
        return self.out / str(self.report["bundle"])

    @property
    def root_squashfs(self) -> Path:
        return self.out / "work/rootfs.squashfs"

    @property
    def keys(self) -> Path:
        return self.out / "keys"


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """generic-amd64 built from this checkout; $APPLIANCE_IMAGE_OUT reuses (or fills) a folder instead,
    to iterate on the boot tests without building each time."""
    if os.geteuid() != 0:
        pytest.skip("building an image needs root (mmdebstrap --mode=root, chroot)")
    reuse = os.environ.get("APPLIANCE_IMAGE_OUT")
    out = Path(reuse) if reuse else tmp_path_factory.mktemp("image")
    if not (reuse and (out / "manifest/build.json").exists()):
        done = subprocess.run(
            # gzip: the root's squashfs in a fifth of xz's time (two minutes less in CI); GRUB reads both,
            # and the ARM boot test (-m boards) boots an xz root
            [
                sys.executable,
                REPO / "image/build",
                "--board",
                "generic-amd64",
                "--out",
                out,
                "--compression",
                "gzip",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, f"image/build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return BuiltImage(out)


GUEST_MODBUS_PORT = 1502
# The VM's world: about the bench world's rate (examples/bench.toml, some 45 readings a second), so that
# the flash-wear figure is per reading of a box as busy as the desk's.
CHANNELS = 9
POLLS_PER_S = 5
BOOT_TIMEOUT_S = 300  # TCG on two cores: a first boot takes a minute or two


def vm_config(device_id: str) -> str:
    registers = "".join(
        f"""
        [[devices.press-1.registers]]
        channel = "{channel}"
        table = "input"
        address = {2 * n}
        datatype = "float32"
        unit = "{"degC" if n == 0 else "kN"}"
        """
        for n, channel in enumerate(["oil_temperature", *(f"load_{n}" for n in range(1, CHANNELS))])
    )
    return textwrap.dedent(f"""
        [device]
        id = "{device_id}"

        [http]
        listen = "0.0.0.0:8443"
        tls = "self-signed"

        [devices.press-1]
        type = "modbus_tcp"
        host = "{GUEST_HOST}"
        port = {GUEST_MODBUS_PORT}
        poll_interval_s = {1 / POLLS_PER_S}
        timeout_s = 2.0
        {registers}
        [safety]
        supervisor = "external"
        socket = "/run/appliance/safety.sock"
        stop_line = {{ gpio = "mock", line = "STOP" }}
    """)


def sim_config(port: int) -> str:
    """The bench's press: oil_temperature a sine of 48 +- 5 degC, then the load channels."""
    signals = ['{ type = "sine", mean = 48.0, amplitude = 5.0, period_s = 7.0 }'] + [
        f'{{ type = "sine", mean = {10.0 * n}, amplitude = 2.0, period_s = {3.0 + n} }}'
        for n in range(1, CHANNELS)
    ]
    registers = "".join(
        f"""
        [[bench.modbus_tcp.registers]]
        table = "input"
        address = {2 * n}
        datatype = "float32"
        signal = {signal}
        """
        for n, signal in enumerate(signals)
    )
    return textwrap.dedent(f"""
        [[bench.modbus_tcp]]
        name = "press-1"
        port = {port}
        {registers}
    """)


@dataclass
class Box:
    vm: Vm
    key: Path
    credential: str
    image: BuiltImage
    first_status_s: float

    def ssh(self, command: str, check: bool = True, timeout: float = 180, stdin: Path | None = None) -> str:
        return self.vm.ssh(command, self.key, timeout=timeout, check=check, stdin=stdin)

    def update_status(self) -> dict[str, Any]:
        return dict(json.loads(self.ssh("appliance update --status --json")))


@pytest.fixture(scope="module")
def box(built_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """The image on a 3 GB disk, booted, with an SSH key and a config dropped on its boot partition and
    the bench's Modbus device on the host."""
    with boot_box(built_image, tmp_path_factory.mktemp("vm")) as booted:
        yield booted


@contextlib.contextmanager
def boot_box(
    image: BuiltImage, folder: Path, arch: str = "x86_64", timeout: float = BOOT_TIMEOUT_S
) -> Iterator[Box]:
    """`image` booted in QEMU from a copy on a 3 GB disk, with the bench's Modbus device on the host;
    the VM and the bench are stopped on the way out."""
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    sim_port = free_port()
    (folder / "sim.toml").write_text(sim_config(sim_port))
    sim_log = folder / "sim.log"
    with open(sim_log, "w") as sink:
        sim = subprocess.Popen(
            [REPO / ".venv/bin/bench", "sim", "--config", folder / "sim.toml"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "bench sim ready" not in sim_log.read_text():
        assert sim.poll() is None and time.monotonic() < deadline, (
            f"bench sim did not start: {sim_log.read_text()}"
        )
        time.sleep(0.1)
    disk = folder / "disk.img"
    drop = {
        "authorized_keys": key.with_suffix(".pub").read_bytes(),
        "appliance.toml": vm_config("vm-box").encode(),
    }
    prepare_disk(image.disk, disk, drop=drop)
    vm = Vm(disk, folder, {22: free_port(), 8443: free_port()}, {GUEST_MODBUS_PORT: sim_port}, arch=arch)
    try:
        t0 = time.monotonic()
        vm.start()
        credential = vm.wait_console(r"admin credential of this box \(user admin\): (\S+)", timeout)[1]
        vm.wait_api("/api/v1/status", credential, timeout)
        yield Box(vm, key, credential, image, time.monotonic() - t0)
    finally:
        vm.kill()
        sim.terminate()
        sim.wait(10)


def booted_and_good(status: dict[str, Any], slot: str) -> bool:
    rauc = status["rauc"] or {}
    return rauc.get("booted") == slot and any(
        s["name"] == slot and s["boot_status"] == "good" for s in rauc.get("slots", [])
    )
