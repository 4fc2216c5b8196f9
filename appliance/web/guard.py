"""The ASGI middleware in front of the app (docs/web.md#limits): a Host header naming something other than
the box is refused (DNS rebinding), a request body over its route's limit is refused (413) by its
declared size before a byte is read or as soon as a chunked one grows past it, and every answer carries
the security headers (a Content-Security-Policy that lets in the page's own script and style only)."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import ipaddress
import json
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.web.limits import body_limit

UNKNOWN_HOST = 421  # Misdirected Request: this server does not answer for that name
FQDN_WAIT_S = 2.0  # the box's full name is asked of the resolver at start; one without DNS must not wait


async def box_names(listen_host: str) -> set[str]:
    """The names the box answers to by default: localhost, its host name, that name in .local (mDNS), its
    fully qualified name (if the resolver says it within FQDN_WAIT_S), and the name it listens on."""
    host = socket.gethostname().lower()
    try:
        fqdn = (await asyncio.wait_for(asyncio.to_thread(socket.getfqdn), FQDN_WAIT_S)).lower()
    except TimeoutError:
        fqdn = ""
    listen = "" if _is_address(listen_host) else listen_host.lower()
    return {name for name in ("localhost", host, f"{host}.local", fqdn, listen) if name}


class Hosts:
    """The Host names a request may carry: `names`, and any IP address (rebinding needs a name); "*"
    lets any name in."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(name.lower().rstrip(".") for name in names)

    def allows(self, value: bytes | None) -> bool:
        if value is None:  # HTTP/1.0 without a Host header names nothing to rebind
            return True
        host = value.decode("latin-1").strip().lower()
        if host.startswith("["):  # [IPv6] or [IPv6]:port
            address, bracket, rest = host[1:].partition("]")
            return bool(bracket) and _is_address(address) and _is_port(rest)
        name, colon, port = host.partition(":")
        if not _is_port(colon + port):
            return False
        name = name.rstrip(".")
        return _is_address(name) or "*" in self.names or name in self.names


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_port(rest: str) -> bool:
    """Nothing, or a colon and a port number."""
    return rest == "" or (rest[0] == ":" and rest[1:].isdigit() and len(rest) <= 6)


def content_security_policy(page: Path) -> str:
    """The policy for every answer: nothing may load but the page's own inline script and style (by
    their hashes, so no other inline code runs), its images and calls to this box; no framing."""
    html = page.read_text()
    scripts = [_hash(code) for code in re.findall(r"<script>(.*?)</script>", html, re.DOTALL)]
    styles = [_hash(code) for code in re.findall(r"<style>(.*?)</style>", html, re.DOTALL)]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + (" ".join(scripts) or "'none'"),
            "style-src " + (" ".join(styles) or "'none'"),
            "img-src 'self'",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _hash(code: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'"


def security_headers(page: Path) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", content_security_policy(page).encode()),
        (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-resource-policy", b"same-origin"),  # other sites may not embed its answers
    ]


class BodyTooLarge(HTTPException):
    """Raised in the app by a read that takes a chunked body past its route's limit; the app's error
    handler answers 413, and the connection is closed (the rest of the body is not read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit), headers={"Connection": "close"})


def _too_large(limit: int) -> str:
    return (
        "this route takes no body"
        if limit == 0
        else f"the body is over {limit} bytes, the most this route takes"
    )


class Guard:
    """The middleware: `hosts` the names let in, `headers` added to every answer; `refused` counts the
    requests it refuses by reason."""

    def __init__(self, app: ASGIApp, hosts: Hosts, headers: list[tuple[bytes, bytes]]) -> None:
        self.app, self.hosts, self.headers = app, hosts, headers
        self.refused: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = dict(scope["headers"])  # h11 refuses a request with two Host or Content-Length headers
        body = _Body(receive, body_limit(scope["method"], scope["path"]), fields)

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in self.headers if name not in present]
                if body.pending and b"connection" not in present:  # its unread rest must not be parsed
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        if not self.hosts.allows(fields.get(b"host")):
            self.refused["unknown_host"] += 1
            await _answer(send_guarded, UNKNOWN_HOST, "unknown host")
        elif body.refused_at_once():
            assert body.limit is not None
            self.refused["body_too_large"] += 1
            await _answer(send_guarded, 413, _too_large(body.limit))
        else:
            with contextlib.suppress(ClientDisconnect):  # gone mid-body, or cut by a limit: nobody to answer
                await self.app(scope, body.receive, send_guarded)
            if body.too_large:
                self.refused["body_too_large"] += 1


class _Body:
    """A request's body as the app reads it, counted against its route's `limit` (None: the route's
    own)."""

    def __init__(self, receive: Receive, limit: int | None, fields: dict[bytes, bytes]) -> None:
        self._receive, self.limit, self.received = receive, limit, 0
        declared = fields.get(b"content-length", b"")
        self.declared = int(declared) if declared.isdigit() else None
        self.chunked = b"transfer-encoding" in fields
        self.pending = self.chunked or bool(self.declared)  # body bytes the app has not read yet
        self.too_large = False

    def refused_at_once(self) -> bool:
        """Whether the declared size is over the limit, or a route without a body gets a chunked one."""
        if self.limit is None:
            return False
        return (self.declared or 0) > self.limit or (self.limit == 0 and self.chunked)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.pending = bool(message.get("more_body", False))
            if self.limit is not None and self.received > self.limit:
                self.too_large = True
                raise BodyTooLarge(self.limit)
        else:  # http.disconnect
            self.pending = False
        return message


async def _answer(send: Send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # a refused request's body, if any, is never read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
