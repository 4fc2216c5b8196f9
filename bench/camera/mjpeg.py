"""The synthetic camera as an MJPEG-over-HTTP IP camera: live conveyor frames, snapshots and ground truth.

    GET /stream.mjpg    multipart/x-mixed-replace JPEG frames at the configured rate (OpenCV/FFmpeg read it)
    GET /snapshot.jpg   the newest frame as one JPEG
    GET /truth          JSON: the newest frame's counter, ts, label and part, and `history`, the last ~200
                        frames as {counter, ts, label}

Every JPEG carries its frame's counter in an X-Frame-Counter header, to be matched against /truth.

The conveyor runs in real time whether or not anyone watches, as the world does. Written on bare asyncio
streams rather than a web framework so the faults can act on the sockets themselves: `freeze()` stops
sending frames but keeps every connection open, `drop_clients()` cuts them, `resume()` undoes a freeze.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import cv2

from bench.camera.conveyor import Conveyor, ConveyorSettings, Truth

BOUNDARY = b"frame"
_READ_TIMEOUT_S = 5.0  # a client that sends no request line in this long is dropped
_STATUS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


@dataclass(frozen=True)
class CameraSettings:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port; `address` tells which
    fps: float = 10.0
    jpeg_quality: int = 85
    conveyor: ConveyorSettings = field(default_factory=ConveyorSettings)
    # like a machine-vision camera fired by a photo-eye: only frames with a part in position are sent
    triggered: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 120 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("fps must be in (0, 120] and jpeg_quality in [1, 100]")


def _response(status: int, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.0 {status} {_STATUS[status]}\r\nContent-Type: {content_type}\r\n{extra}"
    head += f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    return head.encode() + body


class SimulatedCamera:
    """An IP camera filming the conveyor; `start()` and `stop()` run it in the current event loop."""

    def __init__(self, settings: CameraSettings | None = None) -> None:
        self.settings = settings or CameraSettings()
        self.conveyor = Conveyor(self.settings.conveyor)
        self.frozen = False
        self.frames_sent = 0
        self._jpeg = b""
        self._truth: Truth | None = None
        self._history: list[Truth] = []  # the loop's own copy: the conveyor runs in a worker thread
        self._new_frame = asyncio.Condition()
        self._clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._producer: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when the settings asked for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.settings.host, self.settings.port
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await self._next_frame()  # a snapshot is there from the first request on
        self._server = await asyncio.start_server(self._serve_client, self.settings.host, self.settings.port)
        self._producer = asyncio.create_task(self._produce())

    async def stop(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            await asyncio.gather(self._producer, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        self.drop_clients()
        await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._server = self._producer = None

    def freeze(self) -> None:
        """Stop sending frames; connections stay open and silent, as with a hung camera."""
        self.frozen = True

    def resume(self) -> None:
        self.frozen = False

    def drop_clients(self) -> int:
        """Cut every client connection at once, as a camera reboot would; returns how many."""
        clients = list(self._clients.items())
        for task, writer in clients:
            writer.transport.abort()
            task.cancel()
        return len(clients)

    def truth(self) -> dict[str, Any]:
        newest = self._truth
        return {
            "counter": newest.counter if newest else None,
            "ts": newest.ts if newest else None,
            "label": newest.label if newest else None,
            "part": newest.part if newest else None,
            "history": [{"counter": t.counter, "ts": t.ts, "label": t.label} for t in self._history],
        }

    def status(self) -> dict[str, Any]:
        return {
            "url": f"{self.url}/stream.mjpg",
            "frames": self.conveyor.counter,
            "frames_sent": self.frames_sent,
            "clients": len(self._clients),
            "frozen": self.frozen,
        }

    async def _next_frame(self) -> None:
        def make() -> tuple[bytes, Truth, list[Truth]]:
            if self.settings.triggered:  # roll the belt on, undrawn, to the next frame with a part centred
                while self.conveyor.truth_of(self.conveyor.counter)[0] is None:
                    self.conveyor.counter += 1
            image, truth = self.conveyor.next_frame()
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
            if not ok:
                raise RuntimeError("cv2.imencode failed to encode a frame as JPEG")
            return jpeg.tobytes(), truth, list(self.conveyor.history)

        # drawing and encoding take milliseconds: in a thread, so the bench's event loop never waits on them
        self._jpeg, self._truth, self._history = await asyncio.to_thread(make)
        async with self._new_frame:
            self._new_frame.notify_all()

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.settings.fps
        due = loop.time()
        while True:
            due += period
            if loop.time() > due + period:  # fell behind (a busy machine): skip frames rather than burst
                due = loop.time() + period
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self._next_frame()

    async def _frame_after(self, counter: int) -> tuple[bytes, int]:
        """The newest JPEG once it is newer than frame `counter` and the camera is not frozen."""

        def ready() -> bool:
            return not self.frozen and self._truth is not None and self._truth.counter > counter

        async with self._new_frame:
            await self._new_frame.wait_for(ready)
            assert self._truth is not None
            return self._jpeg, self._truth.counter

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
                method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
                writer.write(_response(400, "text/plain", b"bad request\n"))
                return
            path = target.split("?", 1)[0]
            if method != "GET":
                writer.write(_response(405, "text/plain", b"only GET\n"))
            elif path == "/stream.mjpg":
                await self._stream(writer)
            elif path == "/snapshot.jpg":
                jpeg, counter = await self._frame_after(-1)
                writer.write(_response(200, "image/jpeg", jpeg, f"X-Frame-Counter: {counter}\r\n"))
            elif path == "/truth":
                writer.write(_response(200, "application/json", json.dumps(self.truth()).encode()))
            else:
                writer.write(_response(404, "text/plain", b"try /stream.mjpg, /snapshot.jpg or /truth\n"))
            await writer.drain()
        except ConnectionError:
            pass  # the client went away; nothing to tell it
        except asyncio.CancelledError:
            # dropped by drop_clients() or stop(); Python 3.11's stream server logs a handler that ends
            # cancelled as an error, so the handler ends normally instead
            pass
        finally:
            del self._clients[task]
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=" + BOUNDARY + b"\r\n"
            b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        sent = -1
        while True:
            # a slow client gets the newest frame when it is ready for one, never a backlog
            jpeg, sent = await self._frame_after(sent)
            part = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Frame-Counter: %d\r\n\r\n"
            writer.write(part % (BOUNDARY, len(jpeg), sent) + jpeg + b"\r\n")
            await writer.drain()
            self.frames_sent += 1
