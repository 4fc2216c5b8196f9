"""The shaped link: real TCP into a namespace at the set rate, down, up, flapping, and cleaned up."""

from __future__ import annotations

import ipaddress
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import netshape
from bench.netshape import NetShapeError, NetShapeUnavailable, ShapedLink, default_burst

# Runs inside the upstream namespace: answers each "length, then that many bytes" with one byte.
RECEIVER = """
import socket, struct, sys
server = socket.create_server((sys.argv[1], 0))
server.settimeout(20)
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
conn.settimeout(20)
for _ in range(1000):
    head = conn.recv(8, socket.MSG_WAITALL)
    if len(head) < 8:
        break
    left = struct.unpack("!Q", head)[0]
    while left > 0:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            sys.exit("the sender hung up in the middle of a transfer")
        left -= len(chunk)
    conn.sendall(b"k")
"""


def new_link(name: str | None = None) -> ShapedLink:
    try:
        return ShapedLink(name)
    except NetShapeUnavailable as exc:
        pytest.skip(str(exc))


class Sink:
    """A receiver process in the upstream namespace and the appliance's TCP connection to it."""

    def __init__(self, link: ShapedLink) -> None:
        command = [*link.exec_prefix, sys.executable, "-c", RECEIVER, link.upstream_ip]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        assert ready, "the receiver did not start within 10 s"
        port = int(self.proc.stdout.readline())
        self.sock = socket.create_connection((link.upstream_ip, port), timeout=5.0)

    def transfer(self, size: int, timeout_s: float) -> float:
        """Seconds from the first byte sent until the receiver confirmed all of them."""
        self.sock.settimeout(timeout_s)
        start = time.monotonic()
        self.sock.sendall(struct.pack("!Q", size) + bytes(size))
        assert self.sock.recv(1) == b"k"
        return time.monotonic() - start

    def close(self) -> None:
        self.sock.close()  # the receiver leaves at end of stream
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5.0)
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def link() -> Iterator[ShapedLink]:
    with new_link() as shaped:
        yield shaped


@pytest.fixture
def sink(link: ShapedLink) -> Iterator[Sink]:
    receiver = Sink(link)
    yield receiver
    receiver.close()


def leftovers(name: str) -> list[str]:
    """Namespaces and interfaces of the root namespace whose names start with `name`-."""
    found = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()
    found += [path.name for path in Path("/sys/class/net").iterdir()]
    return [item for item in found if item.startswith(f"{name}-")]


def subnet(address: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Interface(f"{address}/30").network


def send_until_stalled(sock: socket.socket, data: memoryview, timeout_s: float) -> int:
    """Bytes the kernel took before a send waited `timeout_s` in vain (all of them if none did)."""
    sock.settimeout(timeout_s)
    sent = 0
    while sent < len(data):  # every send takes at least one byte or times out
        try:
            sent += sock.send(data[sent:])
        except TimeoutError:
            break
    return sent


def carrier(link: ShapedLink) -> str:
    return Path("/sys/class/net", link.appliance_if, "carrier").read_text().strip()


def test_the_burst_lets_tbf_reach_the_rate_but_stays_small() -> None:
    for mbit in (0.5, 1, 10, 50, 100, 1000):
        burst = default_burst(mbit)
        bytes_per_s = mbit * 1e6 / 8
        assert burst >= bytes_per_s / 100  # refilled once per tick even at HZ=100
        assert burst >= 4 * 1514
        assert burst <= max(0.011 * bytes_per_s, 4 * 1514)  # about 10 ms of traffic


def test_default_names_are_short_enough_for_any_pid() -> None:
    assert netshape.base36(0) == "0"
    assert netshape.base36(4_194_304) == "2hwcg"  # the largest pid Linux hands out
    assert netshape.base36(36**4 - 1) == "zzzz"
    assert netshape.NAME_RE.fullmatch(f"nsh{netshape.base36(4_194_304)}x{netshape.base36(36**4 - 1)}")


def test_without_root_or_iproute2_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetShapeUnavailable, match="needs root"):
        ShapedLink()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(NetShapeUnavailable, match="`ip` from iproute2 is not installed"):
        ShapedLink()


def test_a_failing_command_is_named_with_its_stderr() -> None:
    if shutil.which("ip") is None:
        pytest.skip("`ip` from iproute2 is not installed")
    with pytest.raises(NetShapeError, match=r"`ip link del nsh-none-a` failed \(exit \d+\): \S"):
        netshape.run(["ip", "link", "del", "nsh-none-a"])
    with pytest.raises(NetShapeUnavailable, match="no-such-tool-here"):
        netshape.run(["no-such-tool-here"])


def test_the_upstream_is_reached_through_its_namespace(link: ShapedLink, sink: Sink) -> None:
    assert link.netns == f"{link.name}-up"
    assert link.exec_prefix == ["ip", "netns", "exec", link.netns]
    assert subnet(link.appliance_ip) == subnet(link.upstream_ip)
    assert subnet(link.appliance_ip).subnet_of(ipaddress.IPv4Network("10.77.0.0/16"))
    inside = subprocess.run([*link.exec_prefix, "ip", "-o", "-4", "addr"], capture_output=True, text=True)
    assert f"{link.upstream_ip}/30" in inside.stdout
    assert sink.transfer(100_000, timeout_s=5.0) < 2.0


def test_parallel_links_get_their_own_names_and_subnets(link: ShapedLink) -> None:
    with new_link() as other:
        assert other.name != link.name
        assert subnet(other.appliance_ip) != subnet(link.appliance_ip)
        assert subnet(other.upstream_ip) == subnet(other.appliance_ip)


@pytest.mark.slow
def test_throughput_follows_the_rate(link: ShapedLink, sink: Sink) -> None:
    goodput: dict[float, float] = {}
    for mbit in (1.0, 10.0, 50.0):
        link.rate(mbit)
        size = int(mbit * 1e6 / 8 * 1.5)  # about 1.5 s at the set rate
        elapsed = sink.transfer(size, timeout_s=6.0)
        goodput[mbit] = size * 8 / elapsed / 1e6
        assert 0.75 * mbit <= goodput[mbit] <= 1.25 * mbit, goodput
    assert goodput[50.0] > 20 * goodput[1.0]
    link.rate(1.0)  # and back down
    assert sink.transfer(62_500, timeout_s=3.0) > 0.35  # 0.5 s at 1 Mbit/s, less the first burst
    link.unshaped()
    assert sink.transfer(12_500_000, timeout_s=5.0) < 1.0  # 100 Mbit/s and more: no shaping left


def test_down_stalls_a_connection_and_up_resumes_it(link: ShapedLink, sink: Sink) -> None:
    sink.transfer(1000, timeout_s=2.0)  # established
    size = 1 << 20
    sink.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    link.down()
    assert link.is_down
    assert carrier(link) == "0"  # like a pulled cable: our end is up, the line is dead
    sent_before = link.counters()[0]
    data = memoryview(struct.pack("!Q", size) + bytes(size))
    sent = send_until_stalled(sink.sock, data, timeout_s=0.5)
    assert 0 < sent < len(data)  # neither a reset nor an error: the send just stalled
    assert link.counters()[0] == sent_before  # nothing reached the wire
    link.up()
    assert carrier(link) == "1"
    sink.sock.settimeout(5.0)
    start = time.monotonic()
    sink.sock.sendall(data[sent:])
    assert sink.sock.recv(1) == b"k"  # the same connection carried everything
    assert time.monotonic() - start < 4.0
    assert link.counters()[0] - sent_before >= size


def test_counters_grow_by_the_bytes_sent(link: ShapedLink, sink: Sink) -> None:
    # Shaped, so that losses happen in the bucket, before the counter: unshaped, a burst can overflow the
    # receiving end's backlog and the retransmissions would count (as they would on a real wire).
    link.rate(50.0)
    size = 2_000_000
    sent_before, received_before = link.counters()
    sink.transfer(size, timeout_s=5.0)
    sent, received = link.counters()
    # 1448 bytes of data per 1514-byte frame (Ethernet, IP and TCP headers with timestamps)
    assert size * 1.03 <= sent - sent_before <= size * 1.06
    assert 0 < received - received_before < size * 0.06  # acknowledgements


def test_flapping_toggles_the_link_and_ends_up(link: ShapedLink, sink: Sink) -> None:
    link.rate(10.0)
    link.flap(period_s=0.4, count=3)
    seen: set[str] = set()
    for _ in range(300):  # 20 ms samples, at most 6 s
        seen.add(carrier(link))
        if not link.flapping:
            break
        time.sleep(0.02)
    link.stop_flap()
    assert seen == {"0", "1"}
    assert carrier(link) == "1" and not link.is_down
    qdisc = subprocess.run(["tc", "qdisc", "show", "dev", link.appliance_if], capture_output=True, text=True)
    assert "tbf" in qdisc.stdout and "10Mbit" in qdisc.stdout  # the shaping outlived the flaps
    assert sink.transfer(100_000, timeout_s=5.0) < 2.0


def test_flapping_can_be_stopped_early(link: ShapedLink) -> None:
    link.flap(period_s=20.0, count=5)
    with pytest.raises(RuntimeError, match="already flapping"):
        link.flap(period_s=1.0, count=1)
    start = time.monotonic()
    link.stop_flap()
    assert time.monotonic() - start < 1.0
    assert not link.flapping and not link.is_down


def test_bad_settings_are_refused(link: ShapedLink) -> None:
    with pytest.raises(ValueError, match="must be a positive number"):
        link.rate(0)
    with pytest.raises(ValueError, match="must hold a full frame"):
        link.rate(1, burst_bytes=1000)
    with pytest.raises(ValueError, match="latency"):
        link.rate(1, latency_ms=-1)
    with pytest.raises(ValueError, match="both must be positive"):
        link.flap(0, 3)
    with pytest.raises(ValueError, match="link name"):
        ShapedLink("Bad_Name")


def test_nothing_is_left_behind_even_when_the_body_raises() -> None:
    shaped = new_link()

    def body() -> None:
        with shaped:
            shaped.rate(5)
            shaped.flap(period_s=10.0, count=2)
            assert leftovers(shaped.name)
            raise RuntimeError("the body failed")

    with pytest.raises(RuntimeError, match="the body failed"):
        body()
    assert leftovers(shaped.name) == []


def test_a_leftover_of_a_crashed_run_is_removed_first() -> None:
    name = f"nshc{os.getpid()}"
    crashed = new_link(name)  # never closed, as if its process had died
    with new_link(name) as again:
        assert again.appliance_ip == crashed.appliance_ip
        assert sorted(leftovers(name)) == [f"{name}-a", f"{name}-up"]
    assert leftovers(name) == []
    crashed.close()  # nothing left to remove: no error
