"""Free TCP ports on loopback for the children the bench starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    """A port the kernel hands out now (binding port 0): free for a child that binds it soon after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_below_ephemeral() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port from that range (what binding
    port 0 gives) can be taken by any outgoing connection, the runtime's own, before the run binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
