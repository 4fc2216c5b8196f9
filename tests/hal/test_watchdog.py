"""Watchdogs: the sd_notify protocol on a real datagram socket, the kernel device's magic close, the mock."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hal.watchdog import KernelWatchdog, MockWatchdog, SystemdWatchdog


def receive_all(sock: socket.socket) -> list[str]:
    sock.settimeout(1)
    messages = []
    sock.setblocking(False)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


@pytest.mark.parametrize("abstract", [False, True])
def test_systemd_gets_ready_watchdog_and_stopping(tmp_path: Path, abstract: bool) -> None:
    name = f"@appliance-test-{os.getpid()}" if abstract else str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name[1:] if abstract else name)
    try:
        dog = SystemdWatchdog(
            {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
        )
        assert dog.interval_s == 2.0
        dog.ready()
        dog.pet()
        dog.status("polling 3 devices")
        dog.stopping()
        dog.close()
        assert receive_all(server) == [
            f"READY=1\nMAINPID={os.getpid()}",
            "WATCHDOG=1",
            "STATUS=polling 3 devices",
            "STOPPING=1",
        ]
    finally:
        server.close()


def test_systemd_watchdog_interval_only_for_our_pid(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}
    for environ in (env, {"NOTIFY_SOCKET": str(tmp_path / "n")}):
        dog = SystemdWatchdog(environ)
        assert dog.interval_s is None
        dog.close()
    with pytest.raises(OSError, match="NOTIFY_SOCKET is not set"):
        SystemdWatchdog({})


def test_kernel_watchdog_pets_by_writing_and_disarms_with_magic_close(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"  # stands in for /dev/watchdog: the driver sees only writes and close
    device.touch()
    dog = KernelWatchdog(device, interval_s=1.0)
    dog.pet()  # not armed yet: nothing written
    dog.ready()
    dog.pet()
    dog.pet()
    dog.stopping()
    assert device.read_bytes() == b"\0\0V"
    assert dog.fd is None
    with pytest.raises(FileNotFoundError):
        KernelWatchdog(tmp_path / "missing").ready()


def test_mock_watchdog_expires_without_pets() -> None:
    dog = MockWatchdog(timeout_s=0.5)
    assert not dog.expired()
    dog.ready()
    start = dog.events[-1][0]
    assert not dog.expired(start + 0.4)
    assert dog.expired(start + 0.6)
    dog.pet()
    assert not dog.expired(dog.events[-1][0] + 0.4)
    dog.stopping()
    assert not dog.expired(start + 100)
    assert [kind for _, kind in dog.events] == ["ready", "pet", "stopping"]
