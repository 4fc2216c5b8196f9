"""Access control on the HTTP API: reading needs a login except from loopback (configurable), control
needs the admin, browser sessions need their CSRF token, brute force is refused; HTTPS with the box's own
certificate; the live stream."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from appliance.status.safety import EstopStatus
from appliance.web import WebServer, build_app
from appliance.web.access import Access
from appliance.web.attempts import MAX_FAILURES
from appliance.web.auth import CSRF_HEADER, SESSION_COOKIE, AdminCredential
from appliance.web.tls import fingerprint, self_signed
from tests.statuses import status

STATUS = status({"device": "box"})
CLIENT = "192.0.2.10"  # a documentation address: not loopback


class Line:
    """Stands in for the runtime's stop output: records what the API asked of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def manual_trip(self, who: str, reason: str) -> EstopStatus | None:
        self.calls.append(f"trip by {who}: {reason}")
        return estop("tripped")

    async def manual_reset(self, who: str) -> tuple[bool, str, EstopStatus | None]:
        self.calls.append(f"reset by {who}")
        return True, "reset", estop("ok")


def estop(state: str) -> EstopStatus:
    """The stop output's section as the line answers: tripped or ok."""
    assert STATUS.estop is not None
    return STATUS.estop.model_copy(update={"state": state, "latched": state == "tripped"})


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> tuple[AdminCredential, str]:
    credential, plain = AdminCredential.load_or_create(tmp_path_factory.mktemp("credential"))
    assert plain is not None
    return credential, plain


def remote(
    admin: tuple[AdminCredential, str], status_login: str = "remote", access: Access | None = None
) -> tuple[TestClient, Line]:
    """A client from another address on the plant's network (each with counts of its own)."""
    credential, _ = admin
    line = Line()
    app = build_app(lambda: STATUS, control=line, access=access or Access(lambda: credential, status_login))
    return TestClient(app, base_url="http://box.local", client=(CLIENT, 50000)), line


def login(client: TestClient, password: str) -> Any:
    return client.post("/api/v1/login", json={"user": "admin", "password": password})


def test_a_remote_reader_logs_in_and_gets_a_strict_http_only_cookie(
    admin: tuple[AdminCredential, str],
) -> None:
    client, _ = remote(admin)
    refused = client.get("/api/v1/status")
    assert refused.status_code == 401 and "log in" in refused.json()["error"]
    assert client.get("/api/v1/session").json() == {"user": None, "csrf": None, "read_needs_login": True}
    assert client.get("/").status_code == 200  # the page itself, to log in from
    assert login(client, "wrong").status_code == 401
    answer = login(client, admin[1])
    assert answer.status_code == 200 and answer.json()["csrf"]
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; HTTPS sets it (below)
    assert client.get("/api/v1/status").json()["device"] == "box"
    assert client.get("/api/v1/session").json()["csrf"] == answer.json()["csrf"]


def test_control_on_a_session_needs_its_csrf_token_and_the_same_origin(
    admin: tuple[AdminCredential, str],
) -> None:
    client, line = remote(admin)
    csrf = login(client, admin[1]).json()["csrf"]
    trip = "/api/v1/estop/trip"
    assert client.post(trip, json={"reason": "x"}).status_code == 403  # no token: a forged request
    assert client.post(trip, json={"reason": "x"}, headers={CSRF_HEADER: "forged"}).status_code == 403
    evil = {CSRF_HEADER: csrf, "Origin": "http://evil.example"}
    assert client.post(trip, json={"reason": "x"}, headers=evil).status_code == 403
    assert line.calls == []
    ok = client.post(
        trip, json={"reason": "guard open"}, headers={CSRF_HEADER: csrf, "Origin": "http://box.local"}
    )
    assert ok.status_code == 200 and line.calls == ["trip by admin: guard open"]
    assert client.post("/api/v1/logout", headers={CSRF_HEADER: csrf}).status_code == 200
    assert client.post(trip, json={}, headers={CSRF_HEADER: csrf}).status_code == 401  # the session is gone
    assert client.get("/api/v1/status").status_code == 401


def test_scripts_use_the_credential_as_a_bearer_token_without_csrf(
    admin: tuple[AdminCredential, str],
) -> None:
    client, line = remote(admin)
    assert client.post("/api/v1/estop/reset").status_code == 401
    bearer = {"Authorization": f"Bearer {admin[1]}"}
    assert client.post("/api/v1/estop/reset", headers=bearer).status_code == 200
    assert client.get("/api/v1/status", headers=bearer).status_code == 200
    assert line.calls == ["reset by admin"]


def test_brute_force_logins_are_refused_for_a_minute(admin: tuple[AdminCredential, str]) -> None:
    access = Access(lambda: admin[0])
    client, _ = remote(admin, access=access)
    for i in range(MAX_FAILURES):
        assert login(client, f"guess-{i}").status_code == 401
    blocked = login(client, admin[1])  # even the right password, while the address is blocked
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"
    bearer = {"Authorization": f"Bearer {admin[1]}"}
    assert client.post("/api/v1/estop/trip", headers=bearer).status_code == 429
    assert client.post("/api/v1/estop/trip", headers={"Authorization": "Bearer x"}).status_code == 429
    assert access.attempts.blocked(CLIENT, now=time.monotonic() + 61) is False  # the minute passes


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'["admin"]',
        b'{"password": 7}',
        b'{"user": "root", "password": "x"}',
        b'{"password": ""}',
    ],
)
def test_a_bad_login_body_gets_a_clear_error(admin: tuple[AdminCredential, str], body: bytes) -> None:
    client, _ = remote(admin)
    answer = client.post("/api/v1/login", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 401) and answer.json()["error"]


def test_status_login_always_and_never(admin: tuple[AdminCredential, str]) -> None:
    assert remote(admin, "never")[0].get("/api/v1/status").status_code == 200
    assert remote(admin, "always")[0].get("/api/v1/status").status_code == 401


def on_loopback_over_https(admin: tuple[AdminCredential, str], tmp_path: Path, body: Any) -> Line:
    """Run `body(url, context)` against a real server on loopback, over HTTPS with the box's own
    certificate; the stop output it drove."""
    cert, key, made = self_signed(tmp_path, "box", "127.0.0.1")
    assert made and (key.stat().st_mode & 0o777) == 0o600
    assert self_signed(tmp_path, "box", "127.0.0.1") == (cert, key, False)  # kept, not made again
    line = Line()
    history = {"d.t": [(1.0, 2.0), (3.0, 4.0)]}
    access = Access(lambda: admin[0], "remote", secure_cookies=True)
    server = WebServer("127.0.0.1", 0, lambda: STATUS, None, None, line, access, lambda: history, (cert, key))
    context = ssl.create_default_context(cafile=str(cert))

    async def run() -> None:
        await server.start()
        try:
            await asyncio.to_thread(body, server.url, context)
        finally:
            await server.stop()

    asyncio.run(run())
    return line


def request(
    url: str, context: ssl.SSLContext | None, data: bytes | None = None, **headers: str
) -> tuple[int, Any, Any]:
    req = urllib.request.Request(
        url, data=data, headers=headers, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as answer:
            return answer.status, answer.headers, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, json.loads(error.read() or b"null")


def test_over_https_loopback_reads_freely_and_control_still_needs_the_admin(
    admin: tuple[AdminCredential, str], tmp_path: Path
) -> None:
    def body(url: str, context: ssl.SSLContext) -> None:
        assert url.startswith("https://127.0.0.1:")
        assert request(url + "api/v1/status", context)[2]["device"] == "box"
        assert request(url + "api/v1/history", context)[2] == {"d.t": [[1.0, 2.0], [3.0, 4.0]]}
        assert request(url + "api/v1/estop/trip", context, b"{}")[0] == 401
        code, headers, answer = request(
            url + "api/v1/login", context, json.dumps({"password": admin[1]}).encode()
        )
        assert code == 200 and "Secure" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        code, _, _ = request(
            url + "api/v1/estop/trip", context, b"{}", Cookie=cookie, **{CSRF_HEADER: answer["csrf"]}
        )
        assert code == 200

    line = on_loopback_over_https(admin, tmp_path, body)
    assert line.calls == ["trip by admin: "]
    assert len(fingerprint(tmp_path / "https" / "cert.pem").split(":")) == 32


def test_the_live_stream_sends_the_status_every_second(
    admin: tuple[AdminCredential, str], tmp_path: Path
) -> None:
    def body(url: str, context: ssl.SSLContext) -> None:
        began = time.monotonic()
        with urllib.request.urlopen(url + "api/v1/stream", timeout=5, context=context) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            events: list[dict[str, Any]] = []
            while len(events) < 2:
                line = answer.readline().decode()
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        assert [e["device"] for e in events] == ["box", "box"]
        assert 0.8 < time.monotonic() - began < 4.0  # one a second, not a flood

    on_loopback_over_https(admin, tmp_path, body)


def test_appliance_run_serves_https_with_its_own_certificate_and_asks_everyone_to_log_in(
    tmp_path: Path,
) -> None:
    from tests.conftest import bench_config, free_port, start_appliance

    config = tmp_path / "a.toml"
    config.write_text(
        bench_config(free_port()).replace(
            '[http]\nlisten = "127.0.0.1:0"\n',
            '[http]\nlisten = "127.0.0.1:0"\nstatus_login = "always"\ntls = "self-signed"\n',
        )
    )
    assert 'tls = "self-signed"' in config.read_text()
    prints: list[str] = []
    token = ""
    for _ in range(2):  # the second start keeps the certificate the first one made
        app = start_appliance(config, tmp_path / "data")
        try:
            assert app.url.startswith("https://127.0.0.1:")
            cert = tmp_path / "data" / "https" / "cert.pem"
            context = ssl.create_default_context(cafile=str(cert))  # checks the name 127.0.0.1 too
            code, _, answer = request(app.url + "api/v1/status", context)
            assert code == 401 and "log in" in answer["error"]  # loopback too, with "always"
            if not prints:
                token = app.admin_credential()
            code, _, answer = request(app.url + "api/v1/status", context, Authorization=f"Bearer {token}")
            assert code == 200 and answer["device"] == "test-box"
            deadline = time.monotonic() + 5
            while (
                not any("certificate SHA-256" in line for line in app.stdout) and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            line = next(line for line in app.stdout if "certificate SHA-256" in line)
            assert line.split(": ", 1)[1].strip() == fingerprint(cert)
            prints.append(fingerprint(cert))
        finally:
            app.stop()
    assert prints[0] == prints[1]


def test_a_live_stream_ends_when_its_session_logs_out(admin: tuple[AdminCredential, str]) -> None:
    server = WebServer("127.0.0.1", 0, lambda: STATUS, access=Access(lambda: admin[0], "always"))

    def body(url: str) -> None:
        code, headers, answer = request(
            url + "api/v1/login", None, json.dumps({"password": admin[1]}).encode()
        )
        assert code == 200
        cookie = headers["set-cookie"].split(";")[0]
        stream = urllib.request.urlopen(
            urllib.request.Request(url + "api/v1/stream", headers={"Cookie": cookie}), timeout=5
        )
        with stream:
            while not stream.readline().startswith(b"data: "):
                pass
            code, _, _ = request(
                url + "api/v1/logout", None, b"{}", Cookie=cookie, **{CSRF_HEADER: answer["csrf"]}
            )
            assert code == 200
            began = time.monotonic()
            while stream.readline():  # the server ends the stream: EOF
                assert time.monotonic() - began < 4, "the stream went on after the logout"
        assert request(url + "api/v1/stream", None, Cookie=cookie)[0] == 401  # a reconnect is refused

    async def run() -> None:
        await server.start()
        try:
            await asyncio.to_thread(body, server.url)
        finally:
            await server.stop()

    asyncio.run(run())


def test_a_self_signed_key_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """With the certificate missing, the key was rewritten in place: through a link, into its target."""
    (tmp_path / "https").mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("someone else's file\n")
    (tmp_path / "https" / "key.pem").symlink_to(target)
    (tmp_path / "https" / "cert.pem").symlink_to(tmp_path / "also-elsewhere")
    cert, key, made = self_signed(tmp_path, "box", "127.0.0.1")
    assert made and not key.is_symlink() and not cert.is_symlink()
    assert target.read_text() == "someone else's file\n"
    assert not (tmp_path / "also-elsewhere").exists()
    assert (key.stat().st_mode & 0o777) == 0o600
