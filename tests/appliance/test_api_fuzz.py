"""The HTTP API fuzzed from its own OpenAPI description (schemathesis): whatever comes in, no 500s, and
every answer matches the description, anonymous and with the admin credential."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth
from starlette.applications import Starlette

from appliance.web import build_app
from appliance.web.access import Access
from appliance.web.auth import AdminCredential
from tests.appliance.test_access import Line
from tests.statuses import status

NOW = time.time()
STATUS = status(
    {
        "device": "box",
        "time": NOW,
        "uptime_s": 12.5,
        "sensors": [
            {"id": "d.t", "device": "d", "channel": "t", "value": 21.5, "unit": "degC", "ts": NOW,
             "quality": "ok"},
            {"id": "d.s", "device": "d", "channel": "s", "value": "PX-1", "unit": "", "ts": NOW,
             "quality": "stale"},
        ],
        "services": {"store": {"rows_committed": 5}, "qc": {}, "sync": {}},
        "hal": None,
        "disk": {"path": "/data", "total_mb": 1000.0, "free_mb": 500.0},
    }
)  # fmt: skip


class Events:
    def events_since(self, since_id: int, limit: int = 500) -> list[dict[str, Any]]:
        return [{"id": i, "kind": "qc.defect"} for i in range(max(since_id, 0) + 1, 4)][:limit]


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> tuple[AdminCredential, str]:
    credential, plain = AdminCredential.load_or_create(tmp_path_factory.mktemp("credential"))
    assert plain is not None
    return credential, plain


@pytest.fixture(scope="module")
def access(admin: tuple[AdminCredential, str]) -> Access:
    return Access(lambda: admin[0], "remote")


@pytest.fixture(scope="module")
def app(access: Access, tmp_path_factory: pytest.TempPathFactory) -> Starlette:
    evidence = tmp_path_factory.mktemp("evidence")
    (evidence / "20240102T030405.678_dent_7.thumb.jpg").write_bytes(b"\xff\xd8\xff\xe0 not much of a JPEG")
    return build_app(
        lambda: STATUS,
        Events(),
        Path(evidence),
        Line(),
        access,
        lambda: {"d.t": [(NOW - 2, 21.0), (NOW, 21.5)]},
        "test",
    )


def operations(app: Starlette) -> list[Any]:
    # the live stream never ends: it has a test of its own (test_access.py)
    api = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/v1/stream")
    found = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), f"the description has an invalid operation: {result.err()}"
        found.append(result.ok())
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_answers_everything_as_described(
    app: Starlette, access: Access, admin: tuple[AdminCredential, str], mode: GenerationMode
) -> None:
    """Each operation with fuzzed parameters and bodies (valid ones, then invalid ones), anonymous and as
    the admin: no 500s, and status codes, content types and bodies as described."""
    found = operations(app)
    assert {op.label for op in found} >= {"GET /api/v1/status", "POST /api/v1/estop/trip", "GET /metrics"}
    fuzzed = []
    for operation in found:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            access.attempts.clear()  # fuzzed logins must not lock the admin out of the next case
            case.call_and_validate()
            # as the admin: the check that auth is not ignored would take our real credential for its own
            # generated invalid one
            case.call_and_validate(
                headers={"Authorization": f"Bearer {admin[1]}"}, excluded_checks=[ignored_auth]
            )

        try:
            check()
        except Unsatisfiable:  # no parameters and no body: nothing invalid to send
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed.append(operation.label)
    # every operation with parameters or a body got invalid ones
    assert len(fuzzed) >= (4 if mode is GenerationMode.NEGATIVE else len(found)), fuzzed
