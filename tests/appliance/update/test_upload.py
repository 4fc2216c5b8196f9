"""The page's update route on a real `appliance run`: an admin's upload is streamed into DATA/update/ and
asked of the updater; everyone else is refused; too large a body is refused before it is read; and the root
updater (`appliance update --from-request`) installs what was uploaded, which GET /api/v1/update shows."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.appliance.update.box import Box, Bundles
from tests.conftest import ApplianceProcess, get_json, start_appliance

CAP_MB = 1.0


@pytest.fixture
def app(tmp_path: Path, box: Box, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApplianceProcess]:
    box.state_dir.mkdir()  # the image makes it, root's; without it the box takes no uploads
    monkeypatch.setenv("APPLIANCE_UPDATE_STATE_DIR", str(box.state_dir))
    monkeypatch.setenv("APPLIANCE_UPDATE_MAX_MB", str(CAP_MB))
    config = tmp_path / "appliance.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n')
    app = start_appliance(config, tmp_path / "data")
    yield app
    app.close()


def connect(app: ApplianceProcess) -> http.client.HTTPConnection:
    where = urllib.parse.urlsplit(app.url)
    return http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)


def upload(
    app: ApplianceProcess, body: bytes, token: str | None, declared: int | None = None, chunked: bool = False
) -> tuple[int, dict[str, Any]]:
    """POST /api/v1/update with `body`; `declared` claims another Content-Length and sends only `body`."""
    conn = connect(app)
    try:
        conn.putrequest("POST", "/api/v1/update")
        conn.putheader("Content-Type", "application/octet-stream")
        if token is not None:
            conn.putheader("Authorization", f"Bearer {token}")
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(len(body) if declared is None else declared))
        conn.endheaders()
        conn.send(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if chunked else body)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def leftovers(app: ApplianceProcess) -> list[str]:
    folder = app.data_dir / "update"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_admin_uploads_a_bundle_and_the_updater_is_asked(app: ApplianceProcess, bundles: Bundles) -> None:
    token = app.admin_credential()
    body = bundles.good.read_bytes()
    status, answer = upload(app, body, token)
    assert status == 202, answer
    assert answer["size"] == len(body) and answer["sha256"] == hashlib.sha256(body).hexdigest()
    folder = app.data_dir / "update"
    assert (folder / "upload.raucb").read_bytes() == body
    request = json.loads((folder / "request").read_text())
    assert request["file"] == "upload.raucb" and request["size"] == len(body)
    assert request["sha256"] == answer["sha256"]
    assert leftovers(app) == ["request", "upload.raucb"]
    for name in ("request", "upload.raucb"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    state = get_json(app.url + "api/v1/update")
    assert state["available"] is True and state["request"]["size"] == len(body)
    assert state["max_upload_bytes"] == int(CAP_MB * 1e6)
    again, refused = upload(app, body, token)  # one waits for the updater already
    assert again == 409 and "waiting for the updater" in refused["error"]


def test_one_upload_at_a_time_and_its_progress_shows(app: ApplianceProcess, bundles: Bundles) -> None:
    token = app.admin_credential()
    body = bundles.good.read_bytes()
    first = connect(app)
    try:
        first.putrequest("POST", "/api/v1/update")
        first.putheader("Authorization", f"Bearer {token}")
        first.putheader("Content-Length", str(len(body)))
        first.endheaders()
        first.send(body[:65536])  # and wait with the rest
        deadline = time.monotonic() + 10
        while (
            not (receiving := get_json(app.url + "api/v1/update")["receiving"]) or not receiving["received"]
        ):
            assert time.monotonic() < deadline, "the upload never showed"
            time.sleep(0.02)
        assert receiving["size"] == len(body) and 0 < receiving["received"] < len(body)
        status, answer = upload(app, body, token)
        assert status == 409 and answer["error"] == "another upload is being received; wait for it"
        first.send(body[65536:])
        finished = first.getresponse()
        assert finished.status == 202, finished.read()
    finally:
        first.close()
    assert (app.data_dir / "update" / "upload.raucb").read_bytes() == body


def test_without_the_credential_nothing_is_taken(app: ApplianceProcess, bundles: Bundles) -> None:
    body = bundles.good.read_bytes()
    status, answer = upload(app, body, None)
    assert status == 401 and "authentication required" in answer["error"]
    status, answer = upload(app, body, "not-the-credential")
    assert status == 401 and answer["error"] == "wrong credential"
    assert leftovers(app) == []


def test_too_large_a_bundle_is_refused_before_its_body_is_read(app: ApplianceProcess) -> None:
    token = app.admin_credential()
    declared = int(CAP_MB * 1e6) + 1
    status, answer = upload(app, b"\0" * 65536, token, declared=declared)  # the rest is never sent
    assert status == 413
    assert answer["error"] == (
        f"{declared} bytes is more than this box takes ({int(CAP_MB * 1e6)} bytes, APPLIANCE_UPDATE_MAX_MB)"
    )
    assert leftovers(app) == []
    status, answer = upload(app, b"\0" * 1000, token, chunked=True)
    assert status == 411 and "Content-Length" in answer["error"]
    status, answer = upload(app, b"", token)
    assert status == 400 and "empty" in answer["error"]
    assert leftovers(app) == []


def test_the_root_updater_installs_the_upload_and_the_page_shows_it(
    app: ApplianceProcess, box: Box, bundles: Bundles
) -> None:
    status, answer = upload(app, bundles.good.read_bytes(), app.admin_credential())
    assert status == 202, answer
    done = box.update("--from-request", "--data-dir", app.data_dir, "--no-reboot")
    assert done.returncode == 0, done.stderr
    assert leftovers(app) == []  # the request is taken, the upload moved into the state directory and gone
    assert not (box.state_dir / "bundle.raucb").exists()
    assert ["install", str(box.state_dir / "bundle.raucb")] in box.rauc_calls()
    state = get_json(app.url + "api/v1/update")
    assert state["request"] is None and state["receiving"] is None
    assert state["outcome"]["outcome"] == "installed" and state["outcome"]["version"] == "2.0.1"
    assert state["progress"]["state"] == "installed" and state["progress"]["running"] is False
    assert state["trial"]["slot"] == "rootfs.1"
    assert state["slots"]["primary"] == "rootfs.1"
    nothing = box.update("--from-request", "--data-dir", app.data_dir, "--no-reboot")
    assert nothing.returncode == 0 and "nothing to install" in nothing.stdout


def test_an_upload_signed_by_another_ca_fails_and_the_page_says_why(
    app: ApplianceProcess, box: Box, bundles: Bundles
) -> None:
    assert upload(app, bundles.rogue.read_bytes(), app.admin_credential())[0] == 202
    done = box.update("--from-request", "--data-dir", app.data_dir, "--no-reboot")
    assert done.returncode == 1
    assert leftovers(app) == [] and box.record("trial.json") is None
    outcome = get_json(app.url + "api/v1/update")["outcome"]
    assert outcome["outcome"] == "failed" and "signature verification failed" in outcome["message"]


def test_a_box_without_an_updater_takes_no_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: Bundles
) -> None:
    monkeypatch.setenv("APPLIANCE_UPDATE_STATE_DIR", str(tmp_path / "no-such-dir"))
    config = tmp_path / "appliance.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:0"\n')
    app = start_appliance(config, tmp_path / "data")
    try:
        state = get_json(app.url + "api/v1/update")
        assert state["available"] is False and "no updater on this box" in state["why_not"]
        status, answer = upload(app, bundles.good.read_bytes(), app.admin_credential())
        assert status == 404 and "no updater on this box" in answer["error"]
    finally:
        app.close()
