"""The audit log: a line for each login, failed and refused login, logout, trip and reset asked for, update
upload and change of the stop line, with the client and how it proved itself; never a secret; a flood of
failures limited to a few lines a minute and one saying how many more there were."""

from __future__ import annotations

import logging
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from appliance.ops import audit
from appliance.update.upload import UpdateArea
from appliance.web import build_app
from appliance.web.access import Access
from appliance.web.attempts import MAX_FAILURES
from appliance.web.auth import CSRF_HEADER, AdminCredential
from appliance.web.first_credential import FIRST_FILE
from hal.gpio.mock import JOURNAL_ENV, wire_level
from tests.appliance.test_access import Line
from tests.conftest import start_appliance
from tests.statuses import status

STATUS = status({"device": "box"})


@pytest.fixture(autouse=True)
def fresh_quotas() -> Iterator[None]:
    audit.reset()
    yield
    audit.reset()


@pytest.fixture
def admin(tmp_path: Path) -> tuple[AdminCredential, str]:
    credential, plain = AdminCredential.load_or_create(tmp_path / "credential")
    assert plain is not None
    return credential, plain


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "appliance.audit"]


def test_logins_failures_refusals_and_logouts_are_logged_with_the_client_and_how(
    admin: tuple[AdminCredential, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "appliance.audit")
    credential, plain = admin
    (tmp_path / "state").mkdir()
    area = UpdateArea(tmp_path / "data", tmp_path / "state", max_bytes=1000)
    app = build_app(lambda: STATUS, control=Line(), access=Access(lambda: credential, "always"), update=area)
    client = TestClient(app, base_url="http://box.local", client=("192.0.2.7", 50000))
    wrong = [f"wrong-password-{i}" for i in range(MAX_FAILURES)]
    for password in wrong[:-1]:
        assert client.post("/api/v1/login", json={"password": password}).status_code == 401
    assert client.get("/api/v1/status", headers={"Authorization": f"Bearer {wrong[-1]}"}).status_code == 401
    assert client.post("/api/v1/login", json={"password": plain}).status_code == 429  # used up
    other = TestClient(app, base_url="http://box.local", client=("192.0.2.8", 50000))
    answer = other.post("/api/v1/login", json={"password": plain})
    csrf, cookie = answer.json()["csrf"], answer.cookies["appliance_session"]
    headers = {CSRF_HEADER: csrf}
    assert (
        other.post("/api/v1/estop/trip", json={"reason": "guard\nopen"}, headers=headers).status_code == 200
    )
    assert other.post("/api/v1/estop/reset", headers=headers).status_code == 200
    script = TestClient(app, base_url="http://box.local", client=("192.0.2.8", 50001))  # no cookie
    bearer = {"Authorization": f"Bearer {plain}"}
    assert script.post("/api/v1/update", content=b"12345", headers=bearer).status_code == 202
    assert script.post("/api/v1/update", content=b"x" * 5000, headers=bearer).status_code == 413
    assert other.post("/api/v1/logout", headers=headers).status_code == 200
    lines = audit_lines(caplog)
    assert lines[:6] == [
        *["login failed: client 192.0.2.7, session, wrong credential"] * 4,
        "login failed: client 192.0.2.7, bearer, wrong credential",
        f"login refused: client 192.0.2.7, session, {MAX_FAILURES} failed attempts within a minute",
    ]
    assert lines[6:] == [
        "login ok: client 192.0.2.8, session",
        'trip asked: client 192.0.2.8, session, reason "guard\\nopen": line tripped',  # one line
        "reset asked: client 192.0.2.8, session: accepted: reset",
        "login ok: client 192.0.2.8, bearer",
        "update upload: client 192.0.2.8, bearer: received 5 bytes, sha256 "
        "5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5",
        "update upload: client 192.0.2.8, bearer: refused (413): 5000 bytes is more than this box takes "
        "(1000 bytes, APPLIANCE_UPDATE_MAX_MB)",
        "logout: client 192.0.2.8",
    ]
    for secret in [plain, csrf, cookie, *wrong]:
        assert secret not in caplog.text


def test_a_flood_of_failures_gets_a_few_lines_then_one_saying_how_many_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "appliance.audit")
    quota = audit.Quota("failed logins", lines=3, window_s=0.5)
    allowed = [quota.allow(f"192.0.2.{i % 4}") for i in range(50)]
    assert allowed == [True] * 3 + [False] * 47
    deadline = time.monotonic() + 5
    while not audit_lines(caplog):
        assert time.monotonic() < deadline, "no line about the suppressed ones"
        time.sleep(0.02)
    assert audit_lines(caplog) == ["47 more failed logins suppressed in the last 0.5 s (from 4 clients)"]
    assert quota.allow("192.0.2.1") and quota.allow("192.0.2.1")  # the summary was the new window's first
    assert not quota.allow("192.0.2.1")


def test_a_scripts_bearer_is_logged_once_not_on_every_request(
    admin: tuple[AdminCredential, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "appliance.audit")
    app = build_app(lambda: STATUS, access=Access(lambda: admin[0], "always"))
    client = TestClient(app, client=("192.0.2.9", 50000))
    for _ in range(20):
        assert (
            client.get("/api/v1/status", headers={"Authorization": f"Bearer {admin[1]}"}).status_code == 200
        )
    assert audit_lines(caplog) == ["login ok: client 192.0.2.9, bearer"]


def test_a_running_appliance_logs_logins_trips_and_the_stop_line_and_never_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal"
    monkeypatch.setenv(JOURNAL_ENV, str(journal))
    config = tmp_path / "appliance.toml"
    config.write_text(
        '[http]\nlisten = "127.0.0.1:0"\n'
        + textwrap.dedent("""
            [safety]
            supervisor = "spawn"
            heartbeat_interval_ms = 50
            stop_line = { gpio = "mock", line = "STOP" }
        """)
    )
    app = start_appliance(config, tmp_path / "data")
    wrong = [f"not-it-{i}" for i in range(30)]
    try:
        token = app.admin_credential()
        app.wait_for(lambda s: s["estop"]["state"] == "ok")
        assert app.post("api/v1/estop/trip", token, {"reason": "guard open"})[0] == 200
        assert app.post("api/v1/estop/reset", token)[0] == 200
        assert wire_level(journal, "STOP") == 1
        codes = [app.post("api/v1/login", None, {"password": password})[0] for password in wrong]
        assert codes == [401] * MAX_FAILURES + [429] * (len(wrong) - MAX_FAILURES)
        deadline = time.monotonic() + 5
        while "stop line reset" not in app.output and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        app.stop()
    log = app.output
    lines = [
        line.split(" appliance.audit: ", 1)[1] for line in log.splitlines() if " appliance.audit: " in line
    ]
    asked = [line for line in lines if not line.startswith("stop line")]  # the supervisor's word: any time
    assert asked[:4] == [
        "login ok: client 127.0.0.1, bearer",
        f"first-start credential file {tmp_path / 'data' / FIRST_FILE} deleted: the credential has been used",
        'trip asked: client 127.0.0.1, bearer, reason "guard open": line tripped',
        "reset asked: client 127.0.0.1, bearer: accepted: reset: line energized",
    ], lines
    assert [line for line in lines if line.startswith("stop line")] == [
        RegexMatch(r'stop line trip: "manual trip by admin: guard open" \(source request, id \S+\)'),
        RegexMatch(r'stop line reset: ".*" \(source \w+, id \S+\)'),
    ]
    failures = asked[4:]
    assert failures == ["login failed: client 127.0.0.1, session, wrong credential"] * MAX_FAILURES + [
        f"login refused: client 127.0.0.1, session, {MAX_FAILURES} failed attempts within a minute"
    ] * (audit.FLOOD_LINES - MAX_FAILURES)  # then the quota: the rest are counted
    everything = "".join(app.stdout) + log
    for secret in [token, *wrong]:
        assert secret not in everything


class RegexMatch(str):
    """Equal to any string `pattern` matches in full (for comparing lists of log lines)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(str(self), other) is not None

    __hash__ = str.__hash__
