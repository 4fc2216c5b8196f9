"""The update route fuzzed from the OpenAPI description with an update area that takes uploads (the API's
own fuzz test runs the app without one): no 500s and every answer as described, anonymous and as the
admin, whatever the body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth

from appliance.update.upload import UpdateArea
from appliance.web import build_app
from appliance.web.access import Access
from appliance.web.auth import AdminCredential
from tests.statuses import status


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_update_route_answers_as_described(tmp_path: Path, mode: GenerationMode) -> None:
    credential, plain = AdminCredential.load_or_create(tmp_path / "credential")
    assert plain is not None
    (tmp_path / "state").mkdir()
    area = UpdateArea(tmp_path / "data", tmp_path / "state", max_bytes=10_000_000)  # what it generates fits
    access = Access(lambda: credential, "remote")
    app = build_app(lambda: status({}), access=access, update=area)
    api = schemathesis.openapi.from_asgi("/openapi.json", app).include(path="/api/v1/update")
    operations = [result.ok() for result in api.get_all_operations() if isinstance(result, Ok)]
    assert {op.label for op in operations} == {"GET /api/v1/update", "POST /api/v1/update"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            access.attempts.clear()
            (area.folder / "request").unlink(missing_ok=True)  # as the updater takes it
            case.call_and_validate()
            case.call_and_validate(
                headers={"Authorization": f"Bearer {plain}"}, excluded_checks=[ignored_auth]
            )

        try:
            check()
        except Unsatisfiable:  # nothing invalid to send: GET has no parameters, any bytes are a body
            assert mode is GenerationMode.NEGATIVE, operation.label
    if mode is GenerationMode.POSITIVE:  # the admin's uploads went through
        assert (area.folder / "upload.raucb").stat().st_size > 0
