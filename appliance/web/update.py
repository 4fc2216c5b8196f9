"""GET and POST /api/v1/update: what the updater recorded (status readers), and a bundle upload that asks
root's updater to install it (the admin only; docs/updates.md).

The body is the bundle itself (`application/octet-stream`), streamed to disk as it arrives: a
Content-Length is required, and a size over the cap, or one that would fill the data partition, is
refused before any of the body is read.
"""

from __future__ import annotations

import asyncio
import errno
import json

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.ops import audit
from appliance.update.upload import Refused, UpdateArea
from appliance.web.access import Access, client_address, refused
from appliance.web.answers import UpdateState, Uploaded
from appliance.web.openapi import Operation, api

UPLOAD_ERRORS = {
    400: "the body is empty, or ended before its Content-Length",
    404: "this box takes no updates through its page (no updater: not the firmware image)",
    409: "an upload, or an install, is under way already",
    413: "the bundle is larger than the box takes (refused before its body is read)",
    503: "not available now (no credential yet), or the upload could not be stored",
    507: "the bundle would fill the data partition",
}


def update_routes(area: UpdateArea | None, access: Access) -> list[Route]:
    @api(
        get=Operation(
            "The last update's outcome, the install under way, the slots",
            UpdateState,
            errors=(401, 404, 429, 503),
            said={404: "this box takes no updates through its page"},
            security="read",
        ),
        post=Operation(
            "Upload a RAUC bundle: root's updater checks it, installs it and reboots",
            Uploaded,
            code=202,
            description="The body is the bundle, sent with a Content-Length; too large a one is refused "
            "before it is read.",
            errors=(400, 401, 403, 404, 409, 411, 413, 429, 503, 507),
            said=UPLOAD_ERRORS,
            security="control",
            body_media="application/octet-stream",
            body_schema={"type": "string", "format": "binary", "minLength": 1},
        ),
    )
    async def route(request: Request) -> Response:
        return await (upload(request) if request.method == "POST" else read(request))

    async def read(request: Request) -> Response:
        if (refusal := await access.read(request)) is not None:
            return refusal
        if area is None:
            return refused(404, "this box takes no updates through its page")
        return JSONResponse(await asyncio.to_thread(area.status), headers={"Cache-Control": "no-store"})

    async def upload(request: Request) -> Response:
        if (refusal := await access.control(request)) is not None:
            return refusal
        if area is None:
            return refused(404, "this box takes no updates through its page")
        answer = await receive(request, area)
        said = json.loads(bytes(answer.body))
        outcome = (
            f"received {said['size']} bytes, sha256 {said['sha256']}"
            if answer.status_code == 202
            else f"refused ({answer.status_code}): {said['error']}"
        )
        audit.update_upload(client_address(request), access.proven_by(request), outcome)
        return answer

    return [Route("/api/v1/update", route, methods=["GET", "POST"])]


async def receive(request: Request, area: UpdateArea) -> JSONResponse:
    """The upload stored for the updater (202), or why not."""
    try:
        received = await area.receive(
            request.headers.get("content-length"), request.stream(), client_address(request)
        )
    except Refused as exc:
        return refused(exc.status, str(exc), Connection="close")
    except ClientDisconnect:
        return refused(400, "the upload ended before its last byte")
    except OSError as exc:  # a full disk despite the check (something else wrote), or worse
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return refused(507 if full else 503, f"cannot store the upload: {exc.strerror or exc}")
    return JSONResponse(
        {
            "message": "bundle received; the updater checks its signature and installs it, then reboots",
            "size": received["size"],
            "sha256": received["sha256"],
        },
        status_code=202,
    )
