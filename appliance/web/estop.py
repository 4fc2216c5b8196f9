"""POST /api/v1/estop/trip and /reset: manual trip and reset of the stop output, for the admin only."""

from __future__ import annotations

import json
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.ops import audit
from appliance.status.safety import EstopStatus
from appliance.web.access import Access, client_address
from appliance.web.answers import Reset, Trip, Tripped
from appliance.web.openapi import Operation, api

TRIP_BODY_BYTES = 4096
REASON_CHARS = (
    300  # fits the body however it is escaped; cut to 512 bytes of UTF-8 on its way to the supervisor
)


class EstopControl(Protocol):
    async def manual_trip(self, who: str, reason: str) -> EstopStatus | None: ...
    async def manual_reset(self, who: str) -> tuple[bool, str, EstopStatus | None]: ...


def estop_routes(control: EstopControl | None, access: Access) -> list[Route]:
    async def authorized(request: Request) -> Response | None:
        if (refusal := await access.control(request)) is not None:
            return refusal
        if control is None:
            return JSONResponse({"error": "this box has no stop output ([safety] is not configured)"}, 404)
        return None

    @api(
        post=Operation(
            "Trip the stop output (latched until an authorized reset)",
            Tripped,
            description="A body it cannot use still trips the line, then is refused (413, 400).",
            errors=(400, 401, 403, 404, 413, 429, 503),
            said={413: "the body is too large (the line is tripped first)"},
            security="control",
            body=Trip,
            body_required=False,
        )
    )
    async def trip(request: Request) -> Response:
        """An authorized trip always trips: a body that cannot be used trips with a generic reason first,
        and is refused after."""
        if (refused := await authorized(request)) is not None:
            return refused
        reason, problem = await _reason(request)
        asked = (client_address(request), access.proven_by(request))
        try:
            assert control is not None  # authorized() answered 404 otherwise
            if problem is None:
                estop = await control.manual_trip("admin", reason)
                audit.trip_asked(*asked, reason, _state(estop))
                return JSONResponse({"estop": _json(estop)})
            code, error = problem
            estop = await control.manual_trip("admin", f"(request body refused: {error})")
        except (ConnectionError, TimeoutError) as exc:
            audit.trip_asked(*asked, reason, f"the safety supervisor did not answer ({exc})")
            return JSONResponse({"error": f"the safety supervisor did not answer: {exc}"}, 503)
        audit.trip_asked(*asked, f"(request body refused: {error})", _state(estop))
        return JSONResponse(
            {"error": f"tripped, but the body was refused: {error}", "estop": _json(estop)}, code
        )

    @api(
        post=Operation(
            "Reset a latched trip, if no cause is still active",
            Reset,
            errors=(401, 403, 404, 409, 429, 503),
            security="control",
        )
    )
    async def reset(request: Request) -> Response:
        if (refused := await authorized(request)) is not None:
            return refused
        asked = (client_address(request), access.proven_by(request))
        try:
            assert control is not None
            accepted, message, estop = await control.manual_reset("admin")
        except (ConnectionError, TimeoutError) as exc:
            audit.reset_asked(*asked, f"the safety supervisor did not answer ({exc})")
            return JSONResponse({"error": f"the safety supervisor did not answer: {exc}"}, 503)
        audit.reset_asked(*asked, f"{'accepted' if accepted else 'refused'}: {message}")
        if not accepted:
            return JSONResponse({"error": message, "estop": _json(estop)}, status_code=409)
        return JSONResponse({"message": message, "estop": _json(estop)})

    return [
        Route("/api/v1/estop/trip", trip, methods=["POST"]),
        Route("/api/v1/estop/reset", reset, methods=["POST"]),
    ]


def _state(estop: EstopStatus | None) -> str:
    return "line state unknown" if estop is None else f"line {estop.state}"


def _json(estop: EstopStatus | None) -> dict[str, Any] | None:
    return None if estop is None else estop.model_dump(mode="json")


async def _reason(request: Request) -> tuple[str, tuple[int, str] | None]:
    """The trip's reason, or (HTTP code, what is wrong) with the body; at most TRIP_BODY_BYTES are read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > TRIP_BODY_BYTES:
        return "", (413, f"{declared} bytes; at most {TRIP_BODY_BYTES}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > TRIP_BODY_BYTES:
            return "", (413, f"more than {TRIP_BODY_BYTES} bytes")
    if not body.strip():
        return "", None
    try:
        fields = json.loads(body)
    except ValueError:
        return "", (400, 'not JSON; expected {"reason": "guard open"}')
    if not isinstance(fields, dict) or not isinstance(fields.get("reason", ""), str):
        return "", (400, 'expected {"reason": "guard open"} with a string')
    if unknown := sorted(set(fields) - {"reason"}):
        return "", (400, f"unknown field {', '.join(map(repr, unknown))[:100]}; only reason is known")
    reason = str(fields.get("reason", ""))
    if len(reason) > REASON_CHARS:
        return "", (400, f"reason: {len(reason)} characters; at most {REASON_CHARS}")
    return reason, None
