"""The web server's limits with short clocks, on a real socket: slow and silent clients are closed within
the bounds while a live stream, a polling keep-alive client and a progressing upload are not; the
connection caps; X-Forwarded-For from a trusted proxy only; the Host names the config adds; the page's
Content-Security-Policy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.status.document import Status
from appliance.update.upload import UpdateArea
from appliance.web import WebServer
from appliance.web.access import Access
from appliance.web.auth import AdminCredential
from appliance.web.guard import Hosts
from appliance.web.limits import Limits
from appliance.web.server import STATIC
from bench.harness import hostile, raw_http
from tests.statuses import status

SHORT = Limits(
    head_s=1.0,
    idle_s=1.0,
    body_grace_s=1.0,
    min_body_rate=1000.0,
    keep_alive_s=1.0,
    tick_s=0.1,
    max_connections=8,
    max_connections_per_client=4,
)
BOUND = 1.0 + 0.1 + 0.4  # a clock's limit, a tick, and room for a busy machine
STATUS = status({"device": "box"})


@contextlib.contextmanager
def serving(made: Callable[[], Status] = lambda: STATUS, **options: Any) -> Iterator[WebServer]:
    """A WebServer with the SHORT limits on its own event loop in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = WebServer("127.0.0.1", 0, made, **({"limits": SHORT} | options))
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.parametrize(
    ("mode", "interval", "reason"),
    [
        ("silent", 1.0, "head_too_slow"),
        ("head", 0.1, "head_too_slow"),
        ("body", 3.0, "body_stalled"),
        ("body", 0.1, "body_too_slow"),
    ],
    ids=["silent", "head a byte at a time", "body stalled", "body trickling under the least rate"],
)
def test_a_slow_or_silent_client_is_closed_within_the_bound(mode: str, interval: float, reason: str) -> None:
    with serving() as web:
        held = hostile.slowloris(web.url, 3, mode, interval=interval, duration=5.0)
        assert web.status().refused == {reason: 3}  # counted where the status and /metrics show it
    assert all(h is not None and 0.9 < h < BOUND for h in held), held


def test_a_polling_keep_alive_client_is_not_cut_between_requests() -> None:
    with serving() as web, raw_http.connect(web.url) as sock:
        began = time.monotonic()
        while time.monotonic() - began < 2.5:  # well past the head and keep-alive bounds in all
            sock.sendall(raw_http.head("GET", web.url, "/api/v1/status"))
            assert raw_http.read_answer(sock, time.monotonic() + 2).status == 200
            time.sleep(0.3)


def test_the_live_stream_outlives_every_bound() -> None:
    with serving() as web, raw_http.connect(web.url) as sock:
        sock.sendall(raw_http.head("GET", web.url, "/api/v1/stream"))
        events, began = 0, time.monotonic()
        received = b""
        while events < 4:
            more = sock.recv(65536)
            assert more, f"the stream was closed after {time.monotonic() - began:.1f} s"
            received += more
            events = received.count(b"event: status")
        assert time.monotonic() - began > 2.5


def big_status() -> Status:
    """A status of 20000 sensors (1.9 MB): a live stream of it fills the sockets' buffers in seconds."""
    sensor = {"device": "d", "channel": "c", "value": 1.5, "unit": "degC", "ts": 1.0, "quality": "ok"}
    return status({"sensors": [sensor | {"id": f"d.c{i}"} for i in range(20000)]})


def test_a_client_that_stops_reading_its_stream_is_closed() -> None:
    made = big_status()
    with serving(lambda: made) as web:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with sock:
            sock.connect(("127.0.0.1", int(web.url.rsplit(":", 1)[1].strip("/"))))
            sock.sendall(raw_http.head("GET", web.url, "/api/v1/stream"))
            time.sleep(4.0)  # the attack: read nothing while the server's buffers fill and its clock runs
            sock.settimeout(0.5)
            began = time.monotonic()
            with contextlib.suppress(ConnectionError):
                while sock.recv(1 << 20):
                    assert time.monotonic() - began < 3, "the stream went on"


def test_a_progressing_upload_is_not_cut(tmp_path: Path) -> None:
    """A bundle sent at 20 kB/s for 3 s: slow, over every clock's span, but above the least rate."""
    credential, plain = AdminCredential.load_or_create(tmp_path / "credential")
    (tmp_path / "state").mkdir()
    area = UpdateArea(tmp_path / "data", tmp_path / "state", 1_000_000)
    access = Access(lambda: credential)
    body = bytes(range(256)) * 240  # 61 kB
    with serving(access=access, update=area) as web, raw_http.connect(web.url) as sock:
        headers = {"Authorization": f"Bearer {plain}", "Content-Length": str(len(body))}
        sock.sendall(raw_http.head("POST", web.url, "/api/v1/update", headers))
        for at in range(0, len(body), 2048):
            sock.sendall(body[at : at + 2048])
            time.sleep(0.1)
        answer = raw_http.read_answer(sock, time.monotonic() + 5)
    assert answer.status == 202, answer
    assert answer.json()["sha256"] == hashlib.sha256(body).hexdigest()


def test_connections_over_the_caps_are_closed_at_once() -> None:
    with serving() as web:
        assert hostile.flood(web.url, 6, source="127.0.0.2", settle=0.3) == (4, 2)  # per client
        assert web.status().refused == {"connections_per_client": 2}
        held = [raw_http.connect(web.url, source) for source in ["127.0.0.3"] * 4 + ["127.0.0.4"] * 4]
        try:
            assert hostile.flood(web.url, 2, source="127.0.0.5", settle=0.3) == (0, 2)  # in all
        finally:
            for sock in held:
                sock.close()


def test_x_forwarded_for_is_believed_from_a_trusted_proxy_only() -> None:
    """A client the proxy forwards for is remote: it must log in to read; loopback reads freely."""
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    with serving(access=Access(lambda: None), trusted_proxies=["127.0.0.2/32"]) as web:

        def read(source: str, headers: dict[str, str] | None = None) -> int | None:
            return raw_http.request(web.url, "/api/v1/status", headers=headers, source=source).status

        assert read("127.0.0.2", forwarded) == 401
        assert read("127.0.0.2") == 200
        assert read("127.0.0.3", forwarded) == 200
        # a proxy carries many clients: the per-client connection cap is not its
        assert hostile.flood(web.url, 6, source="127.0.0.2", settle=0.3) == (6, 0)


def test_the_host_names_the_config_adds_are_served() -> None:
    with serving(hosts=["box.plant.example"]) as web:
        assert hostile.foreign_host(web.url, "/", "box.plant.example").status == 200
        assert hostile.foreign_host(web.url, "/", "Box.Plant.Example:8080").status == 200
        assert hostile.foreign_host(web.url, "/", "other.plant.example").status == 421
    with serving(hosts=["*"]) as web:
        assert hostile.foreign_host(web.url, "/", "anything.example").status == 200


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (b"localhost", True),
        (b"localhost:8080", True),
        (b"box.local.", True),
        (b"192.0.2.1:80", True),
        (b"[fe80::1]:8080", True),
        (b"[::1]", True),
        (None, True),  # HTTP/1.0 without one
        (b"", False),
        (b"box.local.attacker.example", False),
        (b"localhost:80:80", False),
        (b"localhost:http", False),
        (b"[::1]x", False),
        (b"[box.local]", False),
        (b"::1", False),
    ],
)
def test_host_header_forms(host: bytes | None, allowed: bool) -> None:
    assert Hosts(["localhost", "box.local"]).allows(host) is allowed


def test_the_policy_lets_in_the_pages_own_script_and_style_only() -> None:
    page = (STATIC / "index.html").read_text()
    with serving() as web:
        policy = raw_http.request(web.url, "/").headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    for tag in ("script", "style"):
        (code,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
