"""Serves the status page and the JSON API with Starlette on uvicorn, inside the runtime's loop, behind the
limits of docs/web.md#limits (appliance/web/guard.py in front of the app, connections.py under it)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from appliance.qc.evidence_files import read_evidence
from appliance.service import Service
from appliance.status.document import Status
from appliance.status.service import WebStatus
from appliance.update.upload import UpdateArea
from appliance.web.access import Access, client_address
from appliance.web.answers import Events, History
from appliance.web.connections import bind, limited
from appliance.web.estop import EstopControl, estop_routes
from appliance.web.guard import Guard, Hosts, box_names, security_headers
from appliance.web.limits import DEFAULT_LIMITS, Limits
from appliance.web.metrics import CONTENT_TYPE as METRICS_TYPE
from appliance.web.metrics import render as render_metrics
from appliance.web.openapi import READ_REFUSED, Operation, api, describe
from appliance.web.streams import LiveStreams
from appliance.web.update import update_routes

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
StatusSource = Callable[[], Status]
HistorySource = Callable[[], dict[str, Any]]
GRACE_S = 0.5  # at a stop, open requests get this long to finish
SINCE = {
    "name": "since",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "default": 0},
    "description": "the last event id the caller has",
}
EVIDENCE_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


class EventSource(Protocol):
    def events_since(self, since_id: int, limit: int = 500) -> list[dict[str, Any]]: ...


def build_app(
    status: StatusSource,
    events: EventSource | None = None,
    evidence: Path | None = None,
    control: EstopControl | None = None,
    access: Access | None = None,
    history: HistorySource = dict,
    version: str = "unknown",
    update: UpdateArea | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Starlette:
    """The ASGI app; `status` builds the /api/v1/status document on each request; `update` takes bundle
    uploads for root's updater (appliance/web/update.py)."""
    access = access or Access(lambda: None)
    streams = LiveStreams(limits.max_streams, limits.max_streams_per_client)
    description: dict[str, Any] = {}

    async def openapi(_: Request) -> Response:
        return JSONResponse(description)

    async def page(_: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @api(get=Operation("Everything the box knows now", Status, errors=READ_REFUSED, security="read"))
    async def api_status(request: Request) -> Response:
        if (refusal := await access.read(request)) is not None:
            return refusal
        return Response(
            status().model_dump_json(), media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    @api(
        get=Operation(
            "The figures in Prometheus text format 0.0.4",
            media="text/plain",
            errors=READ_REFUSED,
            security="read",
        )
    )
    async def metrics(request: Request) -> Response:
        if (refusal := await access.read(request)) is not None:
            return refusal
        return Response(
            render_metrics(status()), media_type=METRICS_TYPE, headers={"Cache-Control": "no-store"}
        )

    @api(get=Operation(History.__doc__ or "", History, errors=READ_REFUSED, security="read"))
    async def api_history(request: Request) -> Response:
        if (refusal := await access.read(request)) is not None:
            return refusal
        return JSONResponse(history(), headers={"Cache-Control": "no-store"})

    @api(
        get=Operation(
            "The status document as server-sent events (`event: status`), once a second",
            media="text/event-stream",
            errors=READ_REFUSED,
            said={
                429: "too many failed attempts, or live streams open, from this address",
                503: "not available now (no credential yet), or every live stream is taken",
            },
            security="read",
        )
    )
    async def api_stream(request: Request) -> Response:
        """Server-sent events: the status document as `event: status` every second (streams.py)."""
        if (refusal := await access.read(request)) is not None:
            return refusal
        return streams.answer(client_address(request), status, lambda: access.still_reads(request))

    @api(
        get=Operation(
            "Recorded events with an id above `since`, oldest first (at most 500)",
            Events,
            errors=(400, *READ_REFUSED),
            security="read",
            parameters=[SINCE],
        )
    )
    async def api_events(request: Request) -> Response:
        if (refusal := await access.read(request)) is not None:
            return refusal
        since = request.query_params.get("since", "0")
        if not since.lstrip("-").isdigit():
            return JSONResponse(
                {"error": f"since must be an event id (an integer), got {since!r}"}, status_code=400
            )
        if events is None:
            return JSONResponse([])
        return JSONResponse(await asyncio.to_thread(events.events_since, int(since)))

    @api(
        get=Operation(
            "A reject's frame or thumbnail (JPEG)",
            media="image/jpeg",
            errors=(401, 404, 429, 503),
            security="read",
            parameters=[EVIDENCE_NAME],
        )
    )
    async def evidence_file(request: Request) -> Response:
        if (refusal := await access.read(request)) is not None:
            return refusal
        name = request.path_params["name"]
        # only a file the evidence store wrote: its name, regular, ours, never through a link
        content = await asyncio.to_thread(read_evidence, evidence, name) if evidence is not None else None
        if content is None:
            return JSONResponse({"error": f"no evidence {name!r}"}, status_code=404)
        return Response(content, media_type="image/jpeg")

    async def http_error(request: Request, exc: Exception) -> Response:
        """Every error as JSON with a message, 404s and wrong methods included."""
        assert isinstance(exc, HTTPException)
        message = {404: f"no such route: {request.url.path}", 405: f"{request.method} is not allowed here"}
        return JSONResponse(
            {"error": message.get(exc.status_code, str(exc.detail))},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app = Starlette(
        exception_handlers={HTTPException: http_error},
        routes=[
            Route("/", page),
            Route("/api/v1/status", api_status),
            Route("/api/v1/stream", api_stream),
            Route("/api/v1/history", api_history),
            Route("/api/v1/events", api_events),
            Route("/evidence/{name}", evidence_file),
            Route("/openapi.json", openapi),
            Route("/metrics", metrics),
            *access.routes(),
            *estop_routes(control, access),
            *update_routes(update, access),
        ],
    )
    description.update(describe(app, version))
    return app


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the runtime owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


class WebServer(Service):
    """The HTTP service; `url` is known once it has started. With `tls` (certificate, key) it is HTTPS."""

    name = "web"
    stop_timeout_s = 1.0  # open requests get GRACE_S to finish, then their connections are closed

    def __init__(
        self,
        host: str,
        port: int,
        status: StatusSource,
        events: EventSource | None = None,
        evidence: Path | None = None,
        control: EstopControl | None = None,
        access: Access | None = None,
        history: HistorySource = dict,
        tls: tuple[Path, Path] | None = None,
        version: str = "unknown",
        update: UpdateArea | None = None,
        limits: Limits = DEFAULT_LIMITS,
        trusted_proxies: Sequence[str] = (),
        hosts: Sequence[str] = (),
    ) -> None:
        """`trusted_proxies`: the addresses and networks whose X-Forwarded-For is believed; `hosts`: Host
        names let in besides the box's own (appliance/config/http.py)."""
        super().__init__()
        self.host, self.port, self.tls, self.limits = host, port, tls, limits
        self.proxies = [ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies]
        self.hosts = set(hosts)
        self.app = build_app(status, events, evidence, control, access, history, version, update, limits)
        self._socket: socket.socket | None = None
        self._server: _QuietServer | None = None
        self._guard: Guard | None = None
        self.url = ""

    async def open(self) -> None:
        self._socket = bind(self.host, self.port)
        bound_host, bound_port = self._socket.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"{'https' if self.tls else 'http'}://{shown}:{bound_port}/"
        hosts = Hosts(await box_names(self.host) | self.hosts)
        self._guard = Guard(self.app, hosts, security_headers(STATIC / "index.html"))
        config = uvicorn.Config(
            self._guard,
            http=limited(self.limits, self.proxies, self._guard.refused),
            ws="none",
            proxy_headers=bool(self.proxies),  # X-Forwarded-For believed from the trusted proxies only
            forwarded_allow_ips=[str(proxy) for proxy in self.proxies],
            server_header=False,  # no software name and version to look up vulnerabilities by
            timeout_keep_alive=self.limits.keep_alive_s,  # type: ignore[arg-type]  # a float works
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACE_S,  # type: ignore[arg-type]  # typed int, used as a float
            ssl_certfile=str(self.tls[0]) if self.tls else None,
            ssl_keyfile=str(self.tls[1]) if self.tls else None,
        )
        self._server = _QuietServer(config)

    async def run(self) -> None:
        assert self._server is not None and self._socket is not None
        await self._server.serve(sockets=[self._socket])

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True  # uvicorn finishes open requests, then returns from serve()
            await asyncio.wait([self._task], timeout=GRACE_S + 0.2)
        await super().stop()

    async def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def status(self) -> WebStatus:
        refused = dict(self._guard.refused) if self._guard is not None else {}
        connections = len(self._server.server_state.connections) if self._server is not None else None
        return WebStatus(**self.basics(), url=self.url, connections=connections, refused=refused)
