"""POST /api/v1/estop/trip and /reset: manual trip and reset of the stop output, for the admin only."""

from __future__ import annotations

import json
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.web.access import Access


class EstopControl(Protocol):
    async def manual_trip(self, who: str, reason: str) -> dict[str, Any]: ...
    async def manual_reset(self, who: str) -> tuple[bool, str, dict[str, Any]]: ...


def estop_routes(control: EstopControl | None, access: Access) -> list[Route]:
    async def authorized(request: Request) -> Response | None:
        if (refusal := await access.control(request)) is not None:
            return refusal
        if control is None:
            return JSONResponse({"error": "this box has no stop output ([safety] is not configured)"}, 404)
        return None

    async def trip(request: Request) -> Response:
        if (refused := await authorized(request)) is not None:
            return refused
        body = await request.body()
        try:
            reason = json.loads(body).get("reason", "") if body.strip() else ""
        except (ValueError, AttributeError):
            reason = None
        if not isinstance(reason, str):
            return JSONResponse({"error": 'body: expected JSON such as {"reason": "guard open"}'}, 400)
        try:
            assert control is not None  # authorized() answered 404 otherwise
            estop = await control.manual_trip("admin", reason[:200])
        except (ConnectionError, TimeoutError) as exc:
            return JSONResponse({"error": f"the safety supervisor did not answer: {exc}"}, 503)
        return JSONResponse({"estop": estop})

    async def reset(request: Request) -> Response:
        if (refused := await authorized(request)) is not None:
            return refused
        try:
            assert control is not None
            accepted, message, estop = await control.manual_reset("admin")
        except (ConnectionError, TimeoutError) as exc:
            return JSONResponse({"error": f"the safety supervisor did not answer: {exc}"}, 503)
        if not accepted:
            return JSONResponse({"error": message, "estop": estop}, status_code=409)
        return JSONResponse({"message": message, "estop": estop})

    return [
        Route("/api/v1/estop/trip", trip, methods=["POST"]),
        Route("/api/v1/estop/reset", reset, methods=["POST"]),
    ]
