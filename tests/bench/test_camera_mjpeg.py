"""The synthetic MJPEG camera, read by OpenCV's FFmpeg backend and by a bare HTTP client, with its faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from bench.camera.conveyor import Conveyor, ConveyorSettings
from bench.camera.mjpeg import CameraSettings, SimulatedCamera

T = TypeVar("T")
SMALL = ConveyorSettings(size=(160, 120), frames_per_part=4, defect_rate=0.5, seed=11)


async def with_camera(body: Callable[[SimulatedCamera], Awaitable[T]], settings: CameraSettings) -> T:
    camera = SimulatedCamera(settings)
    await camera.start()
    try:
        return await body(camera)
    finally:
        await camera.stop()


def request(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: camera\r\n\r\n".encode()


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    return int(lines[0].split()[1]), headers


async def fetch(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one request; the camera closes the connection after each answer."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return *parse_head(head), body


class StreamClient:
    """A bare client of /stream.mjpg that reads one multipart part at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: tuple[str, int]) -> StreamClient:
        reader, writer = await asyncio.open_connection(*address)
        client = cls(reader, writer)
        writer.write(request("/stream.mjpg"))
        status, headers = parse_head(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0))
        assert status == 200
        assert headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        return client

    async def part(self, within: float = 5.0) -> tuple[int, bytes]:
        """The next frame's counter and JPEG; TimeoutError if none comes `within` seconds."""
        async with asyncio.timeout(within):
            head = await self.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"--frame\r\n")
            _, headers = parse_head(b"HTTP/1.0 200\r\n" + head.removeprefix(b"--frame\r\n"))
            assert headers["content-type"] == "image/jpeg"
            body = await self.reader.readexactly(int(headers["content-length"]) + 2)
        return int(headers["x-frame-counter"]), body[:-2]

    async def parts_until_silent(self, quiet: float) -> int:
        """How many parts arrive before the stream goes quiet for `quiet` seconds."""
        count = 0
        while True:
            try:
                await self.part(quiet)
            except TimeoutError:
                return count
            count += 1

    async def read_to_end(self) -> None:
        """Reads what was already sent until the connection ends; TimeoutError if it does not."""
        while True:
            try:
                await self.part(2.0)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                return

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def decode(jpeg: bytes) -> npt.NDArray[np.uint8]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, np.uint8)


def read_with_opencv(url: str, count: int) -> list[tuple[int, ...]]:
    # bounded: a broken stream fails the test in seconds instead of hanging it
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    try:
        assert capture.isOpened(), f"OpenCV cannot open {url}"
        shapes = []
        for _ in range(count):
            ok, image = capture.read()
            assert ok and image is not None
            shapes.append(image.shape)
        return shapes
    finally:
        capture.release()


@pytest.mark.parametrize("size", [(320, 240), (160, 120)])
def test_opencv_reads_the_stream(size: tuple[int, int]) -> None:
    async def body(camera: SimulatedCamera) -> list[tuple[int, ...]]:
        url = f"{camera.url}/stream.mjpg"
        return await asyncio.wait_for(asyncio.to_thread(read_with_opencv, url, 5), 30.0)

    settings = CameraSettings(fps=20.0, conveyor=ConveyorSettings(size=size))
    assert asyncio.run(with_camera(body, settings)) == [(size[1], size[0], 3)] * 5


def test_truth_reflects_the_conveyor() -> None:
    async def body(camera: SimulatedCamera) -> dict[str, Any]:
        await asyncio.sleep(1.5)
        status, headers, data = await fetch(camera.address, request("/truth"))
        assert (status, headers["content-type"]) == (200, "application/json")
        truth: dict[str, Any] = json.loads(data)
        assert truth["counter"] <= camera.conveyor.counter - 1
        return truth

    truth = asyncio.run(with_camera(body, CameraSettings(fps=25.0, conveyor=SMALL)))
    history = truth["history"]
    assert [h["counter"] for h in history] == list(range(truth["counter"] + 1))
    assert history[-1]["label"] == truth["label"]
    assert sorted(h["ts"] for h in history) == [h["ts"] for h in history]
    replay = Conveyor(SMALL)  # the same settings replay the same film, so the truth can be checked
    assert [h["label"] for h in history] == [replay.truth_of(h["counter"])[0] for h in history]
    assert any(h["label"] for h in history) and any(h["label"] is None for h in history)


def test_a_snapshot_is_the_frame_it_names() -> None:
    async def body(camera: SimulatedCamera) -> tuple[int, dict[str, str], bytes]:
        return await fetch(camera.address, request("/snapshot.jpg?cache=no"))

    status, headers, jpeg = asyncio.run(with_camera(body, CameraSettings(conveyor=SMALL, jpeg_quality=95)))
    assert (status, headers["content-type"], int(headers["content-length"])) == (200, "image/jpeg", len(jpeg))
    image = decode(jpeg)
    expected = Conveyor(SMALL).frame(int(headers["x-frame-counter"]))
    assert np.abs(image.astype(np.int16) - expected).mean() < 3.0  # JPEG's loss only


def test_bad_requests_get_http_errors() -> None:
    async def body(camera: SimulatedCamera) -> list[int]:
        raws = [request("/truth", "POST"), request("/nope"), b"hello\r\n\r\n"]
        return [(await fetch(camera.address, raw))[0] for raw in raws]

    assert asyncio.run(with_camera(body, CameraSettings(conveyor=SMALL))) == [405, 404, 400]


def test_freeze_keeps_the_connection_silent_until_resume() -> None:
    async def body(camera: SimulatedCamera) -> None:
        client = await StreamClient.open(camera.address)
        try:
            first, _ = await client.part()
            second, jpeg = await client.part()
            assert second > first
            assert decode(jpeg).shape == (120, 160, 3)
            camera.freeze()
            assert await client.parts_until_silent(0.6) <= 1  # one may have been on its way already
            assert camera.status()["clients"] == 1 and camera.status()["frozen"]
            counter = camera.conveyor.counter
            await asyncio.sleep(0.2)
            assert camera.conveyor.counter > counter  # the world goes on; only the camera hangs
            camera.resume()
            third, _ = await client.part(2.0)
            assert third > second
        finally:
            await client.close()

    asyncio.run(with_camera(body, CameraSettings(fps=20.0, conveyor=SMALL)))


def test_dropped_clients_see_the_connection_end_and_can_come_back() -> None:
    async def body(camera: SimulatedCamera) -> None:
        clients = [await StreamClient.open(camera.address) for _ in range(2)]
        try:
            for client in clients:
                await client.part()
            assert camera.drop_clients() == 2
            for client in clients:
                await client.read_to_end()
            again = await StreamClient.open(camera.address)
            try:
                await again.part()
            finally:
                await again.close()
        finally:
            for client in clients:
                await client.close()

    asyncio.run(with_camera(body, CameraSettings(fps=20.0, conveyor=SMALL)))


def test_stop_ends_streams_and_closes_the_port() -> None:
    async def body() -> None:
        camera = SimulatedCamera(CameraSettings(fps=20.0, conveyor=SMALL))
        await camera.start()
        address = camera.address
        client = await StreamClient.open(address)
        try:
            await client.part()
            await camera.stop()
            with contextlib.suppress(ConnectionResetError):  # the rest of what was sent, then the end
                await asyncio.wait_for(client.reader.read(), 2.0)
            assert client.reader.at_eof() or client.reader.exception() is not None
        finally:
            await client.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*address)

    asyncio.run(body())


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="fps"):
        CameraSettings(fps=0.0)
