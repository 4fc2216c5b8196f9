"""Hostile clients of the box's page, for the tests and `bench perf`: oversize bodies, slow and silent
connections, a flood of sockets, live streams hogged by one address, forwarded-address rotation and a
foreign Host name. Plain sockets, so that nothing between the attack and the box tidies it up; each helper
is bounded in count and in time, and a `source` address (127.0.0.2, 127.0.0.3, ...) makes one loopback
machine look like several clients."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench.harness.raw_http import CHUNK, MAX_SECONDS, Answer, connect, head, read_answer, recv, request

MAX_SOCKETS = 2000  # no helper opens more connections than this, whatever it is asked


def oversize_body(
    url: str, path: str, n_bytes: int, chunked: bool = False, timeout: float = 10.0, source: str | None = None
) -> Answer:
    """POST a JSON-typed body of `n_bytes` (declared in Content-Length, or sent chunked without a size),
    reading while sending: stops at the server's answer, when it closes the connection, or at `timeout`.
    `sent` says how much of the body the server let in."""
    began = time.monotonic()
    deadline = began + min(timeout, MAX_SECONDS)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(n_bytes)}
    sent = 0
    with connect(url, source, timeout) as sock:
        sock.sendall(head("POST", url, path, {"Content-Type": "application/json", **framing}))
        sock.setblocking(False)
        received = b""
        while time.monotonic() < deadline:
            wanted = [sock] if sent < n_bytes else []
            readable, writable, _ = select.select([sock], wanted, [], 0.05)
            if readable:
                try:
                    more = sock.recv(CHUNK)
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                except (ConnectionError, ssl.SSLError):
                    break
                if not more:
                    break
                received += more
                if b"\r\n\r\n" in received:
                    break
            elif writable:
                piece = b"x" * min(CHUNK, n_bytes - sent)
                data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                if chunked and sent + len(piece) >= n_bytes:
                    data += b"0\r\n\r\n"
                try:
                    sock.sendall(data)  # non-blocking: raises when the socket's buffer is full
                except (BlockingIOError, ssl.SSLWantWriteError):
                    continue
                except (ConnectionError, ssl.SSLError):
                    break
                sent += len(piece)
        sock.setblocking(True)
        answer = read_answer(sock, deadline, received)
    answer.sent, answer.seconds = sent, time.monotonic() - began
    return answer


def slowloris(
    url: str,
    n: int,
    mode: str = "silent",
    interval: float = 0.5,
    duration: float = 30.0,
    source: str | None = None,
    path: str = "/api/v1/login",
) -> list[float | None]:
    """`n` connections that send nothing (`silent`), a request head a byte every `interval` s (`head`),
    or a full head and then a body a byte every `interval` s (`body`); for each, the seconds until the
    server closed it, None if it was still open after `duration`."""
    n = min(n, MAX_SOCKETS)
    duration = min(duration, MAX_SECONDS)
    if mode == "silent":
        payload = b""
    elif mode == "head":
        payload = head("GET", url, path, {"X-Padding": "p" * 4096})
    elif mode == "body":
        payload = b"x" * 4096
    else:
        raise ValueError(f"mode: silent, head or body, not {mode!r}")
    began = time.monotonic()
    socks = [connect(url, source) for _ in range(n)]
    if mode == "body":
        framing = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
        for sock in socks:
            sock.sendall(head("POST", url, path, framing))
    held: list[float | None] = [None] * n
    position = [0] * n
    next_send = began
    try:
        for sock in socks:
            sock.setblocking(False)
        while time.monotonic() - began < duration and any(h is None for h in held):
            now = time.monotonic()
            if payload and now >= next_send:
                for i, sock in enumerate(socks):
                    if held[i] is None and position[i] < len(payload):
                        with contextlib.suppress(OSError):
                            position[i] += sock.send(payload[position[i] : position[i] + 1])
                next_send = now + interval
            open_socks = [s for i, s in enumerate(socks) if held[i] is None]
            readable, _, _ = select.select(open_socks, [], [], 0.05)
            for sock in readable:
                try:
                    more = sock.recv(CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    more = b""
                if not more:  # closed (or reset) by the server; an answer first is fine too
                    held[socks.index(sock)] = time.monotonic() - began
    finally:
        for sock in socks:
            sock.close()
    return held


def flood(url: str, n: int, source: str | None = None, settle: float = 0.5) -> tuple[int, int]:
    """Open `n` silent connections at once; after `settle` seconds, how many the server keeps open and
    how many it closed at once. All are closed on return."""
    socks: list[socket.socket] = []
    try:
        for _ in range(min(n, MAX_SOCKETS)):
            try:
                socks.append(connect(url, source, timeout=2.0))
            except OSError:
                break  # the listen queue is full: that is the server's cap too
        time.sleep(settle)  # the server's at-once closes arrive meanwhile
        closed = 0
        for sock in socks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                try:
                    closed += sock.recv(1) == b""
                except OSError:
                    closed += 1
        return len(socks) - closed, closed + (n - len(socks))
    finally:
        for sock in socks:
            sock.close()


@dataclass
class Streams:
    """Live streams opened by one address: the status each got; those let in are held open (their events
    read and dropped) until the block ends."""

    statuses: list[int | None]
    socks: list[socket.socket]


@contextlib.contextmanager
def hog_streams(
    url: str, n: int, source: str | None = None, headers: dict[str, str] | None = None
) -> Iterator[Streams]:
    """Open `n` live streams (GET /api/v1/stream) from `source` and hold those the server lets in."""
    statuses: list[int | None] = []
    held: list[socket.socket] = []
    stop = threading.Event()
    try:
        for _ in range(min(n, MAX_SOCKETS)):
            sock = connect(url, source)
            sock.sendall(head("GET", url, "/api/v1/stream", headers))
            answer = _stream_head(sock, time.monotonic() + 5.0)
            statuses.append(answer)
            if answer == 200:
                held.append(sock)
            else:
                sock.close()
        drain = threading.Thread(target=_drain, args=(held, stop), daemon=True)
        drain.start()
        yield Streams(statuses, held)
        stop.set()
        drain.join(2.0)
    finally:
        stop.set()
        for sock in held:
            sock.close()


def _stream_head(sock: socket.socket, deadline: float) -> int | None:
    """The status of a stream's answer, read up to the end of its head only."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        more = recv(sock, deadline)
        if not more:
            return None
        buffer += more
    return int(buffer.split(b" ", 2)[1])


def _drain(socks: list[socket.socket], stop: threading.Event) -> None:
    """Read and drop what the streams send, as a browser would read it, until `stop`."""
    for sock in socks:
        sock.setblocking(False)
    live = list(socks)
    while live and not stop.is_set():
        readable, _, _ = select.select(live, [], [], 0.1)
        for sock in readable:
            try:
                if not sock.recv(CHUNK):
                    live.remove(sock)
            except BlockingIOError:
                continue
            except OSError:
                live.remove(sock)


def forwarded_rotation(
    url: str, path: str, n: int, method: str = "GET", body: bytes = b"", source: str | None = None
) -> list[int | None]:
    """`n` requests, each claiming another client in X-Forwarded-For (198.51.100.1, .2, ...); the
    statuses. A server that trusts the header from anyone sees `n` different clients."""
    statuses = []
    for i in range(min(n, 250)):
        headers = {"X-Forwarded-For": f"198.51.100.{i + 1}"}
        if body:
            headers["Content-Type"] = "application/json"
        statuses.append(request(url, path, method, headers, body, source).status)
    return statuses


def foreign_host(url: str, path: str = "/", host: str = "rebind.attacker.example") -> Answer:
    """A request naming another Host, as a browser does after DNS rebinding points that name at the box."""
    return request(url, path, headers={"Host": host})


def rss_mb(pid: int) -> float:
    """The resident memory of process `pid` in MB (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")
