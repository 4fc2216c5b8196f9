"""GET and POST /api/v1/update: what the updater recorded (status readers), and a bundle upload that asks
root's updater to install it (the admin only; docs/updates.md).

The body is the bundle itself (`application/octet-stream`), streamed to disk as it arrives: a
Content-Length is required, and a size over the cap, or one that would fill the data partition, is
refused before any of the body is read.
"""

from __future__ import annotations

import asyncio
import errno

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.update.upload import Refused, UpdateArea
from appliance.web.access import Access, client_address, refused


def update_routes(area: UpdateArea | None, access: Access) -> list[Route]:
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

    return [Route("/api/v1/update", route, methods=["GET", "POST"])]
