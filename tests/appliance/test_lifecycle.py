"""Bounded start and stop: a service that will not stop or start in time is reported with where it is,
and the others still stop or start; children are reaped whatever their owner did; the stop keeps its
budget; the event loop ends without waiting for what will not end."""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
import time
from pathlib import Path

import pytest

from appliance.lifecycle import BoundedLoop, ServiceSet, StopReport
from appliance.service import Service
from appliance.status.service import ServiceStatus
from appliance.world import BenchWorld
from tests.conftest import free_port


class Part(Service):
    """A service that writes its opens and closes into `journal`."""

    def __init__(self, name: str, journal: list[str], open_s: float = 0.0) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.open_s = open_s

    async def open(self) -> None:
        await asyncio.sleep(self.open_s)
        self.journal.append(f"open {self.name}")

    async def run(self) -> None:
        await asyncio.sleep(3600)

    async def close(self) -> None:
        self.journal.append(f"close {self.name}")


async def stubborn_wait() -> None:
    """What a library that swallows cancellation does: it does not end when asked to."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


class Stubborn(Part):
    """Its close() never ends."""

    stop_timeout_s = 0.3

    async def close(self) -> None:
        self.journal.append(f"closing {self.name}")
        await stubborn_wait()


def stop_all(services: ServiceSet, budget_s: float = 2.0) -> tuple[float, StopReport]:
    async def body() -> tuple[float, StopReport]:
        await services.start()
        began = time.monotonic()
        report = await services.stop(budget_s)
        return time.monotonic() - began, report

    loop = BoundedLoop()  # as `appliance run` runs: a task that will not end does not hold the test
    result: list[tuple[float, StopReport]] = []

    async def keep() -> None:
        result.append(await body())

    loop.run(keep())
    return result[0]


@pytest.mark.realtime("a service past its stop deadline is left at the deadline (docs/running.md)")
def test_a_service_that_will_not_stop_is_reported_and_the_rest_still_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    store = Part("store", journal)
    services = ServiceSet([store, Part("field", journal), Stubborn("web", journal)], stop_after=[store])
    with caplog.at_level(logging.ERROR):
        took, report = stop_all(services)
    assert journal[:3] == ["open store", "open field", "open web"]
    assert sorted(journal[3:5]) == ["close field", "closing web"]  # stopped together
    assert journal[5:] == ["close store"]  # once the others are stopped or given up
    assert report.overran == ["web"]
    assert 0.3 <= took < 0.6
    assert "web did not stop within 0.30 s; moving on" in caplog.text
    assert "in stubborn_wait" in caplog.text and "in close" in caplog.text  # where it was: its stack


@pytest.mark.realtime("the whole stop keeps its budget (docs/running.md)")
def test_the_stop_keeps_its_budget_and_the_store_still_gets_its_reserve() -> None:
    journal: list[str] = []
    store = Part("store", journal)
    store.stop_reserve_s = 0.5
    stuck = [Stubborn(f"stuck{i}", journal) for i in range(3)]
    for service in stuck:
        service.stop_timeout_s = 0.8  # one after the other, they would take 2.4 s
    services = ServiceSet([store, *stuck], stop_after=[*stuck, store])
    took, report = stop_all(services, budget_s=1.0)
    assert report.overran == ["stuck0", "stuck1", "stuck2"]
    assert journal[-1] == "close store"
    assert took < 1.0 + 0.1  # the budget, and at most the least share each overrunning one still gets


def test_a_child_is_killed_and_reaped_even_when_its_service_is_stuck(tmp_path: Path) -> None:
    config = tmp_path / "world.toml"
    config.write_text(
        textwrap.dedent(f"""
        [[bench.modbus_tcp]]
        name = "line"
        port = {free_port()}

        [[bench.modbus_tcp.registers]]
        table = "input"
        address = 0
        datatype = "int16"
        signal = {{ type = "constant", value = 1 }}
        """)
    )

    class StuckWorld(BenchWorld):
        stop_timeout_s = 0.3

        async def close(self) -> None:  # never gets to stop its child
            await stubborn_wait()

    world = StuckWorld(config)
    took, report = stop_all(ServiceSet([world]))
    assert report.overran == ["bench"] and len(report.killed) == 1
    with pytest.raises(ProcessLookupError):  # gone, and reaped: not even a zombie is left
        os.kill(report.killed[0], 0)
    assert took < 1.0


def test_a_slow_start_is_reported_the_rest_start_and_it_runs_once_started(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    slow = Part("camera", journal, open_s=0.5)
    slow.start_timeout_s = 0.1
    services = ServiceSet([Part("store", journal), slow, Part("web", journal)])

    async def body() -> tuple[ServiceStatus, ServiceStatus, list[str]]:
        await services.start()
        starting = slow.status()
        still = services.starting
        await asyncio.sleep(0.6)
        later = slow.status()
        await services.stop()
        return starting, later, still

    with caplog.at_level(logging.INFO):
        starting, later, still = asyncio.run(body())
    assert journal[:3] == ["open store", "open web", "open camera"]
    assert still == ["camera"]
    assert starting.model_dump() == {
        "running": False,
        "restarts": 0,
        "last_error": "not started within 0.1 s; still starting",
    }
    assert later.model_dump() == {"running": True, "restarts": 0, "last_error": None}
    assert "camera has not started within 0.1 s; starting the rest without it" in caplog.text
    assert "camera started late" in caplog.text


def test_a_stop_during_a_slow_start_cancels_it_and_closes_the_service() -> None:
    journal: list[str] = []
    slow = Part("camera", journal, open_s=60)
    slow.start_timeout_s = 0.1
    services = ServiceSet([Part("store", journal), slow])
    took, report = stop_all(services)
    assert journal == ["open store", "close camera", "close store"]
    assert report.clean and took < 0.2


def test_a_failed_start_raises_and_a_stop_closes_what_got_that_far() -> None:
    journal: list[str] = []

    class Broken(Part):
        async def open(self) -> None:
            raise OSError("cannot listen")

    services = ServiceSet([Part("store", journal), Broken("web", journal), Part("health", journal)])

    async def body() -> None:
        try:
            await services.start()
        finally:
            await services.stop()

    with pytest.raises(OSError, match="cannot listen"):
        asyncio.run(body())
    assert journal == ["open store", "close web", "close store"]


def test_the_loop_ends_without_waiting_for_a_busy_worker_thread() -> None:
    async def leaves_a_thread_busy() -> None:
        asyncio.get_running_loop().run_in_executor(None, time.sleep, 3)

    async def tidy() -> None:
        await asyncio.to_thread(time.sleep, 0.01)

    loop = BoundedLoop()
    loop.run(tidy())
    assert loop.clean

    loop = BoundedLoop()
    began = time.monotonic()
    loop.run(leaves_a_thread_busy())
    assert not loop.clean and time.monotonic() - began < 1.0
