"""The bench's fault-injection API: a small HTTP service to make simulated devices misbehave on command.

Targets are a TCP slave's name, an RTU slave as `<line>/<unit>`, or a line's name for `unplug`/`plug_in`.

    GET  /faults                                   what is injected now, per target
    POST /faults {"target": "press-1", "no_answer": true}   set faults (any of Faults.KINDS)
    POST /faults {"target": "line-a/4", "babble": 0.3}      an RTU slave fills 30% of its line with garbage
    POST /faults/clear {"target": "press-1"}       back to normal
    POST /disconnect {"target": "press-1"}         drop the TCP connections of a slave
    POST /unplug {"target": "line-a"}, POST /plug_in {"target": "line-a"}   the appliance's end of a line
    POST /camera {"target": "line-cam", "action": "freeze"}   a camera: freeze, resume, drop
    POST /camera/burst {"target": "line-cam", "label": "crack", "parts": 5}   the next parts all defective
    POST /serial {"target": "air", "action": "garbage"}   a serial sensor: garbage, bad_checksum,
                                                   truncated, overrange, silence, resume, unplug, replug
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.camera.mjpeg import SimulatedCamera
from bench.modbus_slave import Faults, SimulatedSlave
from bench.rtu_line import SimulatedLine
from bench.serial_sensor import SimulatedSerialSensor


class FaultBoard:
    """Every fault-injectable part of the running world, by target name."""

    def __init__(
        self,
        tcp: list[SimulatedSlave],
        lines: list[SimulatedLine],
        sensors: dict[str, SimulatedSerialSensor] | None = None,
        cameras: dict[str, SimulatedCamera] | None = None,
    ) -> None:
        self.tcp = {s.settings.name: s for s in tcp}
        self.lines = {line.settings.name: line for line in lines}
        self.sensors = sensors or {}
        self.cameras = cameras or {}

    def faults(self, target: str) -> Faults:
        if target in self.tcp:
            return self.tcp[target].faults
        line, _, unit = target.partition("/")
        if line in self.lines and unit.isdigit() and int(unit) in self.lines[line].models:
            return self.lines[line].models[int(unit)].faults
        raise KeyError(f"no simulated device {target!r}; known: {', '.join(self.targets())}")

    def targets(self) -> list[str]:
        rtu = [f"{name}/{unit}" for name, line in self.lines.items() for unit in line.models]
        return [*self.tcp, *rtu]

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {t: self.faults(t).active() for t in self.targets()}


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("target"), str):
        raise ValueError('body must be a JSON object with a "target" string')
    return body


def build_app(board: FaultBoard) -> Starlette:
    async def get_faults(_: Request) -> Response:
        return JSONResponse(board.snapshot())

    async def set_faults(request: Request) -> Response:
        try:
            body = await _body(request)
            faults = board.faults(body.pop("target"))
        except (ValueError, KeyError) as exc:
            return _error(str(exc).strip("'\""))
        unknown = set(body) - set(Faults.KINDS)
        if unknown:
            return _error(f"unknown fault {sorted(unknown)[0]!r}; known: {', '.join(Faults.KINDS)}")
        babble = body.get("babble", 0.0)
        if isinstance(babble, bool) or not isinstance(babble, int | float) or not 0 <= babble <= 1:
            return _error(f"babble: a share of the line's time from 0 to 1, got {babble!r}")
        for kind, value in body.items():
            setattr(faults, kind, value)
        return JSONResponse(faults.active())

    async def clear(request: Request) -> Response:
        try:
            board.faults((await _body(request))["target"]).clear()
        except (ValueError, KeyError) as exc:
            return _error(str(exc).strip("'\""))
        return JSONResponse({})

    async def disconnect(request: Request) -> Response:
        try:
            target = (await _body(request))["target"]
        except ValueError as exc:
            return _error(str(exc))
        if target not in board.tcp:
            return _error(f"no TCP slave {target!r}")
        return JSONResponse({"dropped": board.tcp[target].disconnect()})

    def line_action(unplug: bool) -> Any:
        async def handler(request: Request) -> Response:
            try:
                target = (await _body(request))["target"]
            except ValueError as exc:
                return _error(str(exc))
            if target not in board.lines:
                return _error(f"no RTU line {target!r}")
            line = board.lines[target].line
            line.unplug() if unplug else line.plug_in()
            return JSONResponse({"plugged": not unplug})

        return handler

    def action_route(kind: str, actions_of: Callable[[str], dict[str, Callable[[], Any]] | None]) -> Any:
        """POST {"target": NAME, "action": ACTION} for a kind of part; `actions_of` knows each one's."""

        async def handler(request: Request) -> Response:
            try:
                body = await _body(request)
            except ValueError as exc:
                return _error(str(exc))
            actions = actions_of(body["target"])
            if actions is None:
                return _error(f"no {kind} {body['target']!r}")
            if body.get("action") not in actions:
                return _error(f"unknown action {body.get('action')!r}; known: {', '.join(actions)}")
            result = actions[body["action"]]()
            if isinstance(result, bytes):  # what a serial fault wrote: say how much
                result = len(result)
            return JSONResponse({"done": body["action"], "result": result})

        return handler

    def camera_actions(name: str) -> dict[str, Callable[[], Any]] | None:
        cam = board.cameras.get(name)
        return None if cam is None else {"freeze": cam.freeze, "resume": cam.resume, "drop": cam.drop_clients}

    def serial_actions(name: str) -> dict[str, Callable[[], Any]] | None:
        sensor = board.sensors.get(name)
        if sensor is None:
            return None
        return {
            "garbage": sensor.inject_garbage,
            "bad_checksum": sensor.inject_bad_checksum,
            "truncated": sensor.inject_truncated,
            "overrange": sensor.inject_overrange,
            "silence": lambda: sensor.silence(True),
            "resume": lambda: sensor.silence(False),
            "unplug": sensor.unplug,
            "replug": sensor.replug,
        }

    async def camera_burst(request: Request) -> Response:
        try:
            body = await _body(request)
        except ValueError as exc:
            return _error(str(exc))
        cam = board.cameras.get(body["target"])
        if cam is None:
            return _error(f"no camera {body['target']!r}")
        label, parts = body.get("label"), body.get("parts", 5)
        if not isinstance(label, str) or isinstance(parts, bool) or not isinstance(parts, int):
            return _error('a burst is {"label": LABEL, "parts": N}')
        try:
            first, last = cam.conveyor.burst(label, parts)
        except ValueError as exc:
            return _error(str(exc))
        return JSONResponse({"parts": [first, last]})

    camera = action_route("camera", camera_actions)
    serial = action_route("serial sensor", serial_actions)

    return Starlette(
        routes=[
            Route("/serial", serial, methods=["POST"]),
            Route("/camera", camera, methods=["POST"]),
            Route("/camera/burst", camera_burst, methods=["POST"]),
            Route("/faults", get_faults, methods=["GET"]),
            Route("/faults", set_faults, methods=["POST"]),
            Route("/faults/clear", clear, methods=["POST"]),
            Route("/disconnect", disconnect, methods=["POST"]),
            Route("/unplug", line_action(True), methods=["POST"]),
            Route("/plug_in", line_action(False), methods=["POST"]),
        ]
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: `bench sim` owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


class ControlServer:
    """uvicorn serving the fault API inside the world's event loop."""

    def __init__(self, board: FaultBoard, host: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.address = self.sock.getsockname()[:2]
        self.server = _QuietServer(uvicorn.Config(build_app(board), log_level="warning", lifespan="off"))

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.sock])

    def stop(self) -> None:
        self.server.should_exit = True
