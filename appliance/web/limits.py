"""The web server's limits (docs/web.md#limits): how large a request body may be on each route, how long a
client may take to send its request, how many connections and live streams it may hold. Each value is
a named constant with the reason for it; `Limits` carries the time and count limits into the server, so
that a test can run them shorter."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024

# Request bodies (bytes), checked on the declared Content-Length before a byte is read, and counted as a
# chunked body arrives.
LOGIN_BODY_BYTES = 4 * KIB  # {"user": "admin", "password": ...} with a password of at most 256 characters
JSON_BODY_BYTES = 16 * KIB  # any other JSON body: the largest the API takes is a trip's reason, 4 KiB
# Routes that bound their own body and answer for it: an update bundle is streamed to disk under its own
# cap (appliance/web/update.py), and a trip's body over its limit still trips the line first.
OWN_BODY_ROUTES = frozenset({"/api/v1/update", "/api/v1/estop/trip"})
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # their routes take no body at all

# Time (seconds).
HEAD_S = 10.0  # a request's head, from the connection's start or the previous answer; a person's browser
# sends it at once, a slow link in a few seconds
IDLE_S = 10.0  # the longest pause inside a body, or while the client does not read its answer
BODY_GRACE_S = 10.0  # a body's first seconds are free; after them it must average MIN_BODY_RATE
MIN_BODY_RATE = 1000.0  # bytes/s: a 2 GB bundle at 1 kB/s takes 23 days; slower is an attack
KEEP_ALIVE_S = 5.0  # an idle keep-alive connection; a polling page reconnects cheaply
TICK_S = 1.0  # how often each connection's clocks are checked: the bounds hold to within this

# Counts.
MAX_CONNECTIONS = 128  # open at once: well under the 1024 files a service gets by default
MAX_CONNECTIONS_PER_CLIENT = 16  # from one address: a browser opens 6, a few tabs' live streams more
MAX_STREAMS = 32  # live streams at once (each sends the whole status every second)
MAX_STREAMS_PER_CLIENT = 4  # from one address: a few tabs of the page


@dataclass(frozen=True, slots=True)
class Limits:
    """The time and count limits the server applies (the defaults above)."""

    head_s: float = HEAD_S
    idle_s: float = IDLE_S
    body_grace_s: float = BODY_GRACE_S
    min_body_rate: float = MIN_BODY_RATE
    keep_alive_s: float = KEEP_ALIVE_S
    tick_s: float = TICK_S
    max_connections: int = MAX_CONNECTIONS
    max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT
    max_streams: int = MAX_STREAMS
    max_streams_per_client: int = MAX_STREAMS_PER_CLIENT


DEFAULT_LIMITS = Limits()


def body_limit(method: str, path: str) -> int | None:
    """The most bytes of body a request may carry; None where the route bounds its own."""
    if method in BODILESS_METHODS:
        return 0
    if path in OWN_BODY_ROUTES:
        return None
    return LOGIN_BODY_BYTES if path == "/api/v1/login" else JSON_BODY_BYTES
