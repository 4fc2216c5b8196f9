"""The HTTP layer: the status page and /api/v1/status, served by uvicorn on a real socket."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from starlette.routing import Route

from appliance.status.document import Status
from appliance.web import WebServer
from appliance.web.connections import bind
from appliance.web.openapi import describe
from appliance.web.server import build_app
from tests.statuses import status

SENSORS = [
    {"id": "d.t", "device": "d", "channel": "t", "value": 1.0, "unit": "C", "ts": 1.0, "quality": "ok"}
]


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, dict(response.headers), response.read()


async def serve_and(body: Any) -> Any:
    calls = []

    def made() -> Status:
        calls.append(1)
        return status({"device": "box", "uptime_s": len(calls), "sensors": SENSORS})

    server = WebServer("127.0.0.1", 0, made)
    await server.start()
    try:
        return await asyncio.to_thread(body, server.url)
    finally:
        await server.stop()


def test_status_api_is_built_fresh_on_each_request() -> None:
    def body(url: str) -> None:
        code, headers, raw = fetch(url + "api/v1/status")
        assert code == 200 and headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-store"
        first = json.loads(raw)
        assert first["sensors"] == SENSORS and first["device"] == "box"
        assert json.loads(fetch(url + "api/v1/status")[2])["uptime_s"] == first["uptime_s"] + 1

    asyncio.run(serve_and(body))


def test_the_page_is_html_that_follows_the_live_stream() -> None:
    def body(url: str) -> None:
        code, headers, raw = fetch(url)
        assert code == 200 and headers["content-type"].startswith("text/html")
        page = raw.decode()
        assert "<title>" in page and 'new EventSource("/api/v1/stream")' in page

    asyncio.run(serve_and(body))


def test_unknown_routes_and_wrong_methods_are_json_errors() -> None:
    def body(url: str) -> None:
        with pytest.raises(urllib.error.HTTPError) as caught:
            fetch(url + "nope")
        with caught.value as error:
            assert error.code == 404 and json.load(error) == {"error": "no such route: /nope"}
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(urllib.request.Request(url + "api/v1/status", data=b"", method="POST"))
        with caught.value as error:
            assert error.code == 405 and json.load(error) == {"error": "POST is not allowed here"}
            assert "GET" in error.headers["allow"]

    asyncio.run(serve_and(body))


def test_a_busy_port_is_a_clear_error_at_start() -> None:
    holder = bind("127.0.0.1", 0)
    port = holder.getsockname()[1]
    holder.close()
    holder = bind("127.0.0.1", port)
    try:
        server = WebServer("127.0.0.1", port, lambda: status({}))
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(server.start())
    finally:
        holder.close()


def test_every_api_route_is_described_from_its_models() -> None:
    """/openapi.json is generated from the app's routes and the models of what they answer."""
    app = build_app(lambda: status({}))
    described = describe(app, "test")
    routes = {route.path for route in app.routes if isinstance(route, Route)}
    assert set(described["paths"]) == routes - {"/", "/openapi.json"}  # the page and this description
    answer = described["paths"]["/api/v1/status"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/Status"}
    schemas = described["components"]["schemas"]
    assert set(schemas["Status"]["properties"]) == set(Status.model_fields)
    assert {"polls", "failures", "last_poll_ms"} <= set(schemas["ModbusStatus"]["properties"])
    assert described["paths"]["/api/v1/update"].keys() == {"get", "post"}
