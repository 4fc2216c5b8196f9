"""HTTP/1.1 over a plain socket, for clients that must send what a library would not (a byte at a time,
a lying Host, a body that never ends) and see exactly what comes back: a connection from a chosen local
address, a request's head, one answer read within a deadline."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

MAX_SECONDS = 120.0  # no request waits longer, whatever it is asked
CHUNK = 64 * 1024


@dataclass
class Answer:
    """What came back for one request: the status (None if the server closed without one), its headers
    (lower-case names), body, the bytes of request body sent, and how long it all took."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent: int = 0
    seconds: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


def _target(url: str) -> tuple[str, int, bool]:
    parts = urllib.parse.urlsplit(url)
    tls = parts.scheme == "https"
    return parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80), tls


def connect(url: str, source: str | None = None, timeout: float = 5.0) -> socket.socket:
    """A connection to the server of `url`, from the local address `source` if given (any loopback
    address works on Linux); over TLS without checking the certificate (the box's own, self-signed)."""
    host, port, tls = _target(url)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if source is not None:
            sock.bind((source, 0))
        sock.connect((host, port))
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
    except OSError:
        sock.close()
        raise
    return sock


def head(method: str, url: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    """A request's head for `path` on the server of `url`, with a Host header naming it as the URL does
    unless `headers` has one."""
    given = dict(headers or {})
    host = next((given.pop(name) for name in list(given) if name.lower() == "host"), None)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or urllib.parse.urlsplit(url).netloc}"]
    lines += [f"{name}: {value}" for name, value in given.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(sock: socket.socket, deadline: float, buffer: bytes = b"") -> Answer:
    """Read one answer (status, headers, the body by its Content-Length, else to the end) until
    `deadline` (monotonic seconds); a connection closed or reset before the head is status None."""
    while b"\r\n\r\n" not in buffer:
        more = recv(sock, deadline)
        if not more:
            return Answer(None, body=buffer)
        buffer += more
    raw_head, _, body = buffer.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", -1))
    while length < 0 or len(body) < length:
        more = recv(sock, deadline)
        if not more:
            break
        body += more
    return Answer(status, headers, body if length < 0 else body[:length])


def recv(sock: socket.socket, deadline: float) -> bytes:
    """The next bytes, b"" at the end, at a reset or past `deadline`."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return b""
    sock.settimeout(remaining)
    try:
        return sock.recv(CHUNK)
    except (TimeoutError, ConnectionError, ssl.SSLError):
        return b""


def request(
    url: str,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    source: str | None = None,
    timeout: float = 5.0,
) -> Answer:
    """One request on a connection of its own; `headers` go as given (a Host header replaces the URL's)."""
    began = time.monotonic()
    sent_headers = dict(headers or {})
    if body and "Content-Length" not in sent_headers:
        sent_headers["Content-Length"] = str(len(body))
    raw = head(method, url, path, sent_headers)
    with connect(url, source, timeout) as sock:
        sock.sendall(raw + body)
        answer = read_answer(sock, began + min(timeout, MAX_SECONDS))
    answer.sent, answer.seconds = len(body), time.monotonic() - began
    return answer
