"""The service contract: a failing run() is restarted with backoff and reported, never fatal."""

from __future__ import annotations

import asyncio
import contextlib
import time

from appliance.service import Service


class Flaky(Service):
    name = "flaky"
    backoff_initial_s = 0.01
    backoff_max_s = 0.04

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.runs: list[float] = []
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1

    async def run(self) -> None:
        self.runs.append(asyncio.get_running_loop().time())
        if len(self.runs) <= self.failures:
            raise ConnectionError(f"boom {len(self.runs)}")
        await asyncio.sleep(3600)


def test_failing_runs_are_restarted_with_growing_backoff() -> None:
    async def body() -> Flaky:
        service = Flaky(failures=4)
        await service.start()
        for _ in range(200):
            if len(service.runs) == 5:
                break
            await asyncio.sleep(0.01)
        status = service.status()
        await service.stop()
        assert status.model_dump() == {
            "running": True,
            "restarts": 4,
            "last_error": "ConnectionError: boom 4",
        }
        return service

    service = asyncio.run(body())
    gaps = [b - a for a, b in zip(service.runs, service.runs[1:], strict=False)]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02 and gaps[2] >= 0.04 and gaps[3] >= 0.04  # doubles, then capped
    assert gaps[3] < 0.5
    assert (service.opened, service.closed) == (1, 1)  # resources are held across restarts
    assert not service.running


def test_a_service_without_a_loop_starts_and_stops() -> None:
    async def body() -> None:
        service = Service()
        await service.start()
        await asyncio.sleep(0)
        assert service.status().model_dump() == {"running": True, "restarts": 0, "last_error": None}
        await service.stop()
        assert service.status().running is False

    asyncio.run(body())


class Awaiting(Service):
    """Awaits each answer as pymodbus does, with asyncio.wait_for and a timeout."""

    name = "poller"

    def __init__(self) -> None:
        super().__init__()
        self.answer: asyncio.Future[int] | None = None
        self.answers = 0

    async def run(self) -> None:
        while True:
            self.answer = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.answer, timeout=10)
            self.answers += 1


def test_a_stop_that_races_an_answer_still_stops_the_service() -> None:
    """An answer and the stop's cancellation in the same turn of the loop: Python 3.11's wait_for returns
    the answer and drops the cancellation, so a single cancel() left the poller polling and the stop
    waiting for ever (the hang seen under load)."""

    async def body() -> tuple[float, int]:
        service = Awaiting()
        await service.start()
        for _ in range(1000):
            if service.answer is not None:
                break
            await asyncio.sleep(0.001)
        assert service.answer is not None
        service.answer.set_result(1)  # the answer arrives ...
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.stop(), 2)  # ... as the stop cancels the run
        return time.monotonic() - began, service.answers

    took, answers = asyncio.run(body())
    assert took < 1.0, "the stop did not end: the cancellation was lost"
    assert answers <= 1
