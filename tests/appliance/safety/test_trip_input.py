"""A trip asked for always trips: through `appliance run`'s API with reasons of any size and script, and
with bodies too large, not JSON or with fields it does not know (it trips first, then refuses the body)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hal.gpio.mock import JOURNAL_ENV, read_journal
from tests.appliance.safety.test_runtime_safety import safety_config
from tests.conftest import ApplianceProcess, start_appliance

EMOJI = "\U0001f525" * 200


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ApplianceProcess, str, Path]]:
    journal = tmp_path / "journal"
    monkeypatch.setenv(JOURNAL_ENV, str(journal))
    app = start_appliance(safety_config(tmp_path, "spawn"), tmp_path / "data")
    try:
        yield app, app.admin_credential(), journal
    finally:
        app.stop()


def _energized(app: ApplianceProcess, token: str, journal: Path) -> None:
    app.wait_for(lambda s: s["estop"]["phase"] in ("ok", "tripped"))
    if app.status()["estop"]["phase"] == "tripped":
        assert app.post("api/v1/estop/reset", token)[0] == 200
    app.wait_for(lambda s: s["estop"]["state"] == "ok")
    assert read_journal(journal)[-1].level == 1


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        (json.dumps({"reason": EMOJI}).encode(), 200, "manual trip by admin: \U0001f525"),
        (json.dumps({"reason": EMOJI}, ensure_ascii=False).encode(), 200, "manual trip by admin: \U0001f525"),
        (json.dumps({"reason": "x" * 100_000}).encode(), 413, "request body refused"),
        (b"guard open, stop!", 400, "request body refused"),
        (b'{"reason": "guard", "force": true}', 400, "request body refused"),
        (b'{"reason": 12}', 400, "request body refused"),
        (json.dumps({"reason": "x" * 301}).encode(), 400, "request body refused: reason: 301 characters"),
        (b'{"reason": "\\ud83d lone"}', 200, "manual trip by admin: ? lone"),
    ],
    ids=[
        "emoji",
        "emoji-utf8",
        "100kB",
        "not-json",
        "unknown-field",
        "not-a-string",
        "too-long",
        "lone-surrogate",
    ],
)
def test_an_authenticated_trip_always_drops_the_line(
    box: tuple[ApplianceProcess, str, Path], body: bytes, code: int, reason: str
) -> None:
    app, token, journal = box
    _energized(app, token, journal)
    status, answer = app.post("api/v1/estop/trip", token, raw=body)
    assert status == code, answer
    assert read_journal(journal)[-1].level == 0
    estop: dict[str, Any] = app.status()["estop"]
    assert estop["state"] == "tripped" and estop["latched"] and reason in estop["reason"]
    assert len(estop["reason"].encode()) <= 512


def test_an_unauthenticated_trip_changes_nothing(box: tuple[ApplianceProcess, str, Path]) -> None:
    app, token, journal = box
    _energized(app, token, journal)
    assert app.post("api/v1/estop/trip", None, raw=b"x" * 100_000)[0] == 401
    assert read_journal(journal)[-1].level == 1
