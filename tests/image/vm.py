"""A firmware image booted in QEMU (x86_64 with OVMF, or aarch64's `virt` board with AAVMF: EFI both) for
the image tests.

The VM's network is QEMU's user network with `restrict=on`: the guest reaches nothing but what is
forwarded. The host reaches the guest's SSH and status page through forwarded loopback ports; the
guest reaches the host's simulated Modbus device at 10.0.2.100 through a `guestfwd` that runs socat
to the host's loopback. KVM is used when it can run firmware, else QEMU's own CPU emulation (TCG).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The EFI firmware per architecture: code (read-only) and a template of its variables (copied per VM).
FIRMWARE = {
    "x86_64": (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    "aarch64": (Path("/usr/share/AAVMF/AAVMF_CODE.fd"), Path("/usr/share/AAVMF/AAVMF_VARS.fd")),
}
MACHINE = {"x86_64": ["-machine", "q35"], "aarch64": ["-machine", "virt"]}
ESP_OFFSET = 1 << 20  # the ESP starts 1 MiB into the disk (image/builder/layout.py)
GUEST_HOST = "10.0.2.100"  # where the guest finds the host's forwarded services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_disk(image: Path, disk: Path, size_gb: int = 3, drop: dict[str, bytes] | None = None) -> None:
    """A copy of the flashed image on a larger 'card', with files dropped on its boot partition
    (appliance/authorized_keys, appliance/appliance.toml) as a user would before the first boot."""
    subprocess.run(["cp", "--sparse=always", image, disk], check=True)
    os.truncate(disk, size_gb << 30)
    at = f"{disk}@@{ESP_OFFSET}"
    if drop:
        subprocess.run(["mmd", "-D", "s", "-i", at, "::/appliance"], check=False, capture_output=True)
        for name, content in drop.items():
            staged = disk.parent / f"drop-{name}"
            staged.write_bytes(content)
            subprocess.run(["mcopy", "-o", "-i", at, staged, f"::/appliance/{name}"], check=True)
            staged.unlink()


@dataclass
class Vm:
    disk: Path
    folder: Path
    guest_ports: dict[int, int] = field(default_factory=dict)  # guest port -> host loopback port
    to_host: dict[int, int] = field(default_factory=dict)  # port at GUEST_HOST -> host loopback port
    proc: subprocess.Popen[bytes] | None = None
    boots: int = 0
    arch: str = "x86_64"  # or "aarch64" (always emulated here: no KVM for another architecture)

    @property
    def serial(self) -> Path:
        return self.folder / f"serial-{self.boots}.log"

    def start(self) -> None:
        code, template = FIRMWARE[self.arch]
        vars_fd = self.folder / "vars.fd"
        if not vars_fd.exists():
            shutil.copy2(template, vars_fd)
        self.boots += 1
        forwards = "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for g, h in self.guest_ports.items())
        forwards += "".join(
            f",guestfwd=tcp:{GUEST_HOST}:{g}-cmd:socat - TCP:127.0.0.1:{h}" for g, h in self.to_host.items()
        )
        cmd = [
            f"qemu-system-{self.arch}",
            *MACHINE[self.arch],
            *accelerator(self.arch),
            "-smp",
            "2",
            "-m",
            "1024",
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_fd}",
            "-drive",
            f"if=virtio,format=raw,file={self.disk}",
            "-netdev",
            f"user,id=n0,restrict=on{forwards}",
            "-device",
            "virtio-net-pci,netdev=n0",
            "-display",
            "none",
            "-serial",
            f"file:{self.serial}",
            "-monitor",
            "none",
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self) -> None:
        """Pull the power: SIGKILL to QEMU, nothing flushed that the guest did not flush itself."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def wait_for_exit(self, timeout: float) -> None:
        assert self.proc is not None
        self.proc.wait(timeout)
        self.proc = None

    def console(self) -> str:
        return (
            self.serial.read_bytes().decode(errors="replace").replace("\r", "")
            if self.serial.exists()
            else ""
        )

    def boots_seen(self) -> int:
        """How many times GRUB booted a slot since this QEMU started (a reboot keeps the process). GRUB
        says it once per terminal, both on this serial line, back to back: a run counts once."""
        return len(re.findall(r"(?:Booting `[^']*')+", self.console()))

    def wait_console(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.console()):
                return found
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(
            f"{pattern!r} not on the console within {timeout} s; its end:\n{self.console()[-3000:]}"
        )

    def ssh(
        self, command: str, key: Path, timeout: float = 120, check: bool = True, stdin: Path | None = None
    ) -> str:
        with open(stdin or os.devnull, "rb") as source:
            done = subprocess.run(
                [
                    "ssh",
                    "-i",
                    key,
                    "-p",
                    str(self.guest_ports[22]),
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "LogLevel=ERROR",
                    "-o",
                    "ConnectTimeout=10",
                    "-o",
                    "BatchMode=yes",
                    "admin@127.0.0.1",
                    command,
                ],
                stdin=source,
                capture_output=True,
                timeout=timeout,
            )
        out = done.stdout.decode(errors="replace")
        if check and done.returncode != 0:
            raise AssertionError(f"ssh {command!r} exited {done.returncode}: {out}{done.stderr.decode()}")
        return out

    def api(self, path: str, credential: str, body: Path | None = None) -> Any:
        """GET (or POST a file) to the status page's API over HTTPS (the box's self-signed certificate)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        headers = {"Authorization": f"Bearer {credential}"}
        url = f"https://127.0.0.1:{self.guest_ports[8443]}{path}"
        if body is None:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                return json.load(answer)
        headers |= {"Content-Length": str(body.stat().st_size), "Content-Type": "application/octet-stream"}
        with open(body, "rb") as data:
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=600, context=context) as answer:
                return json.load(answer)

    def wait_api(self, path: str, credential: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                return self.api(path, credential)
            except (OSError, ValueError) as exc:
                last = exc
                time.sleep(0.5)
        raise AssertionError(f"GET {path} did not answer within {timeout} s: {last}")


def accelerator(arch: str = "x86_64") -> list[str]:
    """KVM where the host's KVM is the hardware kind (kvm_intel, kvm_amd), else QEMU's emulation (TCG).
    Nested hosts may offer a /dev/kvm from kvm_pvm, which runs only guest kernels built for it and
    never a firmware's real-mode start. $APPLIANCE_VM_ACCEL=kvm|tcg overrides. Another architecture
    than the host's is always emulated (pointer authentication the cheap way: a third faster)."""
    if arch != "x86_64":
        return ["-accel", "tcg,thread=multi", "-cpu", "max,pauth-impdef=on"]
    choice = os.environ.get("APPLIANCE_VM_ACCEL")
    if choice is None:
        hardware = any(Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd"))
        choice = "kvm" if hardware and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"
    if choice == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]
