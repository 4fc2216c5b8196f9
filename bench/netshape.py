"""A shaped network link between the appliance (root namespace) and an upstream network namespace."""

from __future__ import annotations

import itertools
import math
import os
import re
import shlex
import shutil
import subprocess
import threading
import zlib
from pathlib import Path
from types import TracebackType

COMMAND_TIMEOUT_S = 10.0
FRAME_BYTES = 1514  # a full Ethernet frame at MTU 1500: tbf drops any packet larger than its bucket
MIN_BURST_BYTES = 4 * FRAME_BYTES  # so a slow link still sends a few frames back to back
HZ_FLOOR = 100  # the coarsest kernel tick in use; a bucket refilled once per tick must hold rate / HZ
SUBNETS = 16384  # the /30 subnets of 10.77.0.0/16
NAME_RE = re.compile(r"[a-z][a-z0-9]{0,12}")  # 13 characters + "-a" fits IFNAMSIZ (15)
_ADDRESS_RE = re.compile(r"inet 10\.77\.(\d+)\.(\d+)/")
_sequence = itertools.count()


class NetShapeError(RuntimeError):
    """A command that builds, changes or removes the link failed."""


class NetShapeUnavailable(NetShapeError):
    """This machine cannot build a shaped link: not root, no iproute2, no namespaces, no tbf."""


def default_burst(mbit: float) -> int:
    """Token bucket size for a rate: rate / HZ at HZ=100 (10 ms of traffic), at least four full frames."""
    return max(MIN_BURST_BYTES, math.ceil(mbit * 1e6 / 8 / HZ_FLOOR))


def base36(number: int) -> str:
    head = base36(number // 36) if number >= 36 else ""
    return head + "0123456789abcdefghijklmnopqrstuvwxyz"[number % 36]


def check_available() -> None:
    """Raise NetShapeUnavailable, with the reason, unless this process can build a shaped link."""
    if os.geteuid() != 0:
        raise NetShapeUnavailable("network shaping needs root (network namespaces, veth pairs, tc)")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise NetShapeUnavailable(f"`{tool}` from iproute2 is not installed")


def run(cmd: list[str]) -> str:
    """Run one command; a failure names the command and carries its stderr."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise NetShapeUnavailable(f"`{cmd[0]}` is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise NetShapeError(f"`{shlex.join(cmd)}` did not finish within {COMMAND_TIMEOUT_S:g} s") from exc
    if done.returncode != 0:
        raise NetShapeError(f"`{shlex.join(cmd)}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


class ShapedLink:
    """A veth pair from the root namespace (the appliance) to the namespace `<name>-up` (its upstream).

    Rates, drops and flaps act on the link only; processes stay where they are. Upstream programs run
    inside the namespace with `exec_prefix + [program, ...]`.
    """

    def __init__(self, name: str | None = None) -> None:
        # base 36 keeps any pid (5 digits) and over a million links per process (4) within 13 characters
        self.name = name if name is not None else f"nsh{base36(os.getpid())}x{base36(next(_sequence))}"
        if not NAME_RE.fullmatch(self.name):
            raise ValueError(f"link name {self.name!r}: 1-13 lowercase letters or digits, a letter first")
        check_available()
        self.netns = f"{self.name}-up"
        self.appliance_if = f"{self.name}-a"
        self.upstream_if = f"{self.name}-b"
        self._lock = threading.Lock()  # the flap thread and the caller change the same link
        self._shaped: set[str] = set()
        self._down = False
        self._stop_flap = threading.Event()
        self._flapper: threading.Thread | None = None
        self._flap_error: BaseException | None = None
        self._remove()  # the leftover of a crashed run under the same name
        self.appliance_ip, self.upstream_ip = self._free_subnet()
        try:
            self._build()
        except BaseException as exc:
            try:
                self._remove()
            except NetShapeError as cleanup:
                exc.add_note(f"and cleaning up failed too: {cleanup}")
            raise

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    @property
    def is_down(self) -> bool:
        return self._down

    def _free_subnet(self) -> tuple[str, str]:
        # Start from a place fixed by the name (a leftover gets its subnet back), skip ones in use.
        used = {(int(a) * 256 + int(b)) // 4 for a, b in _ADDRESS_RE.findall(run(["ip", "-o", "-4", "addr"]))}
        start = zlib.crc32(self.name.encode()) % SUBNETS
        for step in range(SUBNETS):
            index = (start + step) % SUBNETS
            if index not in used:
                third, fourth = divmod(index * 4, 256)
                return f"10.77.{third}.{fourth + 1}", f"10.77.{third}.{fourth + 2}"
        raise NetShapeError("every /30 subnet of 10.77.0.0/16 is in use")

    def _build(self) -> None:
        ns, a, b = self.netns, self.appliance_if, self.upstream_if
        try:
            run(["ip", "netns", "add", ns])
            # One segment per packet, as a real NIC puts on the wire: tbf and the byte counters then see
            # frames with their own headers, not 64 KiB offload packets with headers counted once.
            seg = ["gso_max_segs", "1"]
            run(["ip", "link", "add", a, *seg, "type", "veth", "peer", "name", b, *seg, "netns", ns])
        except NetShapeUnavailable:
            raise
        except NetShapeError as exc:
            raise NetShapeUnavailable(f"cannot create a network namespace and veth pair: {exc}") from exc
        if Path("/proc/sys/net/ipv6").is_dir():
            # no link-local address, so no router solicitations or MLD reports add to the byte counters
            run(["ip", "link", "set", a, "addrgenmode", "none"])
            run(["ip", "-n", ns, "link", "set", b, "addrgenmode", "none"])
        run(["ip", "addr", "add", f"{self.appliance_ip}/30", "dev", a])
        run(["ip", "-n", ns, "addr", "add", f"{self.upstream_ip}/30", "dev", b])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "set", b, "up"])
        run(["ip", "link", "set", a, "up"])

    def _remove(self) -> None:
        """Remove whatever of the link exists, trying every step; raise the first failure afterwards."""
        errors: list[NetShapeError] = []
        # Deleting one end of a veth pair deletes both at once; a deleted namespace frees its devices
        # only later, in the background, so the link goes first.
        if Path("/sys/class/net", self.appliance_if).exists():
            try:
                run(["ip", "link", "del", self.appliance_if])
            except NetShapeError as exc:
                errors.append(exc)
        try:
            if self.netns in run(["ip", "netns", "list"]).split():
                run(["ip", "netns", "del", self.netns])
        except NetShapeError as exc:
            errors.append(exc)
        if errors:
            raise errors[0]

    def _qdisc(self, verb: str, side: str, args: list[str]) -> None:
        netns = ["-n", self.netns] if side == self.upstream_if else []
        try:
            run(["tc", *netns, "qdisc", verb, "dev", side, *args])
        except NetShapeError as exc:
            if "qdisc kind is unknown" in str(exc):  # a kernel built without sch_tbf
                raise NetShapeUnavailable(f"the kernel has no tbf qdisc: {exc}") from exc
            raise

    def rate(self, mbit: float, burst_bytes: int | None = None, latency_ms: float = 50.0) -> None:
        """Shape both directions to `mbit` with a token bucket; a later call replaces the rate."""
        if not (math.isfinite(mbit) and mbit > 0):
            raise ValueError(f"rate {mbit} Mbit/s: must be a positive number")
        burst = default_burst(mbit) if burst_bytes is None else burst_bytes
        if burst < FRAME_BYTES:
            raise ValueError(f"burst {burst} bytes: must hold a full frame ({FRAME_BYTES} bytes)")
        if not (math.isfinite(latency_ms) and latency_ms > 0):
            raise ValueError(f"latency {latency_ms} ms: must be a positive number")
        tbf = ["root", "tbf", "rate", f"{round(mbit * 1e6)}bit", "burst", str(burst)]
        tbf += ["latency", f"{round(latency_ms * 1000)}us"]
        with self._lock:
            # Egress of each end: the appliance's end shapes the uplink, the upstream's end the downlink.
            for side in (self.appliance_if, self.upstream_if):
                self._qdisc("replace", side, tbf)
                self._shaped.add(side)

    def unshaped(self) -> None:
        """Remove the shaping: the link runs at veth speed again."""
        with self._lock:
            for side in sorted(self._shaped):
                self._qdisc("del", side, ["root"])
                self._shaped.discard(side)

    def down(self) -> None:
        """Pull the cable: the appliance's end loses carrier and every packet vanishes, without a reset."""
        with self._lock:
            # Taking the far end down drops the carrier of the near end, as a pulled cable does: the
            # appliance's interface stays up with its address and route, packets sent into it are dropped,
            # and no RST or ICMP reaches either side, so open connections stall and survive.
            run(["ip", "-n", self.netns, "link", "set", self.upstream_if, "down"])
            self._down = True

    def up(self) -> None:
        """Plug the cable back in; stalled connections resume with their next retransmission."""
        with self._lock:
            run(["ip", "-n", self.netns, "link", "set", self.upstream_if, "up"])
            self._down = False

    def flap(self, period_s: float, count: int) -> None:
        """In the background, `count` times: down for half of `period_s`, then up for the other half."""
        if not (math.isfinite(period_s) and period_s > 0) or count < 1:
            raise ValueError(f"flap period {period_s} s, count {count}: both must be positive")
        if self.flapping:
            raise RuntimeError("the link is already flapping")
        self._stop_flap.clear()
        self._flap_error = None
        self._flapper = threading.Thread(
            target=self._flap, args=(period_s, count), name=f"flap-{self.name}", daemon=True
        )
        self._flapper.start()

    @property
    def flapping(self) -> bool:
        return self._flapper is not None and self._flapper.is_alive()

    def _flap(self, period_s: float, count: int) -> None:
        try:
            for _ in range(count):
                self.down()
                stopped = self._stop_flap.wait(period_s / 2)
                self.up()
                if stopped or self._stop_flap.wait(period_s / 2):
                    return
        except BaseException as exc:  # handed to stop_flap(), which runs in the caller's thread
            self._flap_error = exc

    def stop_flap(self, timeout_s: float = 5.0) -> None:
        """Stop flapping and wait for it (a flap ends up); raise what went wrong in the flap thread."""
        flapper, self._flapper = self._flapper, None
        if flapper is not None:
            self._stop_flap.set()
            flapper.join(timeout_s)
            if flapper.is_alive():
                raise NetShapeError(f"the flap thread of {self.name} did not stop within {timeout_s:g} s")
        error, self._flap_error = self._flap_error, None
        if error is not None:
            raise NetShapeError(f"flapping {self.name} failed: {error}") from error

    def counters(self) -> tuple[int, int]:
        """Bytes (with Ethernet headers) sent and received by the appliance's end of the link."""
        stats = Path("/sys/class/net", self.appliance_if, "statistics")
        return int((stats / "tx_bytes").read_text()), int((stats / "rx_bytes").read_text())

    def close(self) -> None:
        """Stop flapping and remove the veth pair and the namespace; safe to call more than once.

        Stop the programs running inside the namespace first: a deleted namespace lives on, unnamed and
        unreachable, until its last process exits.
        """
        try:
            self.stop_flap()
        finally:
            self._remove()

    def __enter__(self) -> ShapedLink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
