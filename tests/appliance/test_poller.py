"""The Modbus poller against the bench's simulated slave on loopback: values, errors, recovery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

from appliance.config.models import ModbusTcpDeviceSettings
from appliance.poller import ModbusPoller, ReadingSink
from appliance.records import Quality, Reading
from bench.config import ModbusTcpSlave
from bench.modbus_slave import SimulatedSlave
from drivers.modbus.tcp import ModbusTcpClient
from tests.conftest import free_port

LAYOUT = [
    # (channel, table, address, datatype, byte_order, word_order, scale, offset, value)
    ("temp", "input", 0, "float32", "big", "big", 1.0, 0.0, 21.25),
    ("pressure", "input", 2, "int16", "big", "big", 0.1, 0.0, -12.5),
    ("energy", "holding", 10, "uint32", "big", "little", 1.0, 0.0, 123456789.0),
    ("flow", "holding", 12, "float64", "little", "little", 1.0, 0.0, 0.125),
    ("level", "holding", 16, "uint16", "big", "big", 0.5, -10.0, 40.0),
    ("running", "coil", 5, "bool", "big", "big", 1.0, 0.0, 1.0),
    ("door", "discrete_input", 9, "bool", "big", "big", 1.0, 0.0, 0.0),
]


def sim_settings(port: int) -> ModbusTcpSlave:
    return ModbusTcpSlave.model_validate(
        {
            "name": "s",
            "port": port,
            "unit": 1,
            "registers": [
                {
                    "table": t,
                    "address": a,
                    "datatype": d,
                    "byte_order": bo,
                    "word_order": wo,
                    "scale": s,
                    "offset": o,
                    "signal": {"type": "constant", "value": v},
                }
                for _, t, a, d, bo, wo, s, o, v in LAYOUT
            ],
        }
    )


def device_settings(
    port: int, extra: Sequence[dict[str, Any]] = (), **options: Any
) -> ModbusTcpDeviceSettings:
    registers = [
        {
            "channel": c,
            "table": t,
            "address": a,
            "datatype": d,
            "byte_order": bo,
            "word_order": wo,
            "scale": s,
            "offset": o,
        }
        for c, t, a, d, bo, wo, s, o, _ in LAYOUT
    ]
    return ModbusTcpDeviceSettings.model_validate(
        {
            "type": "modbus_tcp",
            "host": "127.0.0.1",
            "port": port,
            "poll_interval_s": 0.05,
            "timeout_s": 0.5,
            "max_gap": 2,
            "registers": registers + list(extra),
            **options,
        }
    )


def poller_for(port: int, sink: ReadingSink, extra: Sequence[dict[str, Any]] = ()) -> ModbusPoller:
    settings = device_settings(port, extra)
    return ModbusPoller("dev", settings, partial(ModbusTcpClient, "127.0.0.1", port, 1, 0.5), sink)


def by_channel(readings: Sequence[Reading]) -> dict[str, Reading]:
    return {r.channel: r for r in readings}


async def poll(poller: ModbusPoller, client: ModbusTcpClient) -> dict[str, Reading]:
    return by_channel(await poller.poll_once(client))


@contextlib.asynccontextmanager
async def rig(
    extra: Sequence[dict[str, Any]] = (),
) -> AsyncIterator[tuple[SimulatedSlave, ModbusPoller, ModbusTcpClient]]:
    """A simulated slave on a free loopback port, and a poller with its client pointed at it."""
    port = free_port()
    slave = SimulatedSlave(sim_settings(port))
    await slave.serve()
    poller = poller_for(port, lambda _: None, extra)
    client = ModbusTcpClient("127.0.0.1", port, 1, 0.5)
    try:
        yield slave, poller, client
    finally:
        client.close()
        await slave.shutdown()


def test_every_channel_decodes_to_the_value_the_simulator_serves() -> None:
    async def body() -> None:
        async with rig() as (_, poller, client):
            readings = await poll(poller, client)
        assert {c: r.quality for c, r in readings.items()} == {c[0]: Quality.OK for c in LAYOUT}
        for channel, *_, value in LAYOUT:
            assert readings[channel].value == value, channel
        # holding 10..19 is one read (gap 0), the two input registers another, one each for the bits
        assert len(poller.blocks) == 4
        assert poller.failures == {}

    asyncio.run(body())


def test_an_exception_marks_only_the_affected_channels() -> None:
    async def body() -> None:
        async with rig([{"channel": "ghost", "table": "input", "address": 500}]) as (_, poller, client):
            first = await poll(poller, client)
            second = await poll(poller, client)
        for readings in (first, second):
            assert readings["ghost"].quality is Quality.ERROR and readings["ghost"].value is None
            assert readings["temp"].quality is Quality.OK
        assert poller.failures == {"exception": 2}
        assert (
            poller.last_failure is not None
            and "input 500+1 on unit 1: Modbus exception code 2" in poller.last_failure
        )

    asyncio.run(body())


def test_a_vanished_device_is_marked_error_and_recovers_when_it_returns() -> None:
    async def body() -> None:
        async with rig() as (slave, poller, client):
            assert (await poll(poller, client))["temp"].quality is Quality.OK
            await slave.shutdown()
            await asyncio.sleep(0.05)
            down = await poll(poller, client)
            assert {r.quality for r in down.values()} == {Quality.ERROR}
            assert poller.failures["disconnected"] >= 1
            revived = SimulatedSlave(sim_settings(client.port))
            await revived.serve()
            try:
                for _ in range(100):  # backoff is short after one failure; give it up to 5 s
                    await asyncio.sleep(0.05)
                    back = await poll(poller, client)
                    if back["temp"].quality is Quality.OK:
                        break
            finally:
                await revived.shutdown()
            assert {r.quality for r in back.values()} == {Quality.OK}

    asyncio.run(body())


def test_an_absent_device_is_backed_off_without_stalling_the_schedule() -> None:
    async def body() -> None:
        port = free_port()  # nothing listens here
        got: list[Sequence[Reading]] = []
        poller = poller_for(port, got.append)
        await poller.start()
        await asyncio.sleep(0.5)
        await poller.stop()
        assert poller.polls >= 3  # it kept its schedule
        assert all(r.quality is Quality.ERROR for batch in got for r in batch)
        # backoff: far fewer connection attempts than polls
        assert poller.failures["disconnected"] < poller.polls
        assert poller.restarts == 0

    asyncio.run(body())


def test_the_service_polls_on_its_interval_and_stops_at_once() -> None:
    async def body() -> None:
        port = free_port()
        slave = SimulatedSlave(sim_settings(port))
        await slave.serve()
        got: list[Sequence[Reading]] = []
        poller = poller_for(port, got.append)
        try:
            await poller.start()
            await asyncio.sleep(0.5)
            loop = asyncio.get_running_loop()
            began = loop.time()
            await poller.stop()
            assert loop.time() - began < 0.2
        finally:
            await slave.shutdown()
        assert 5 <= len(got) <= 12  # 0.5 s at 0.05 s
        assert all(len(batch) == len(LAYOUT) for batch in got)
        status = poller.status()
        assert status["running"] is False and status["requests_per_poll"] == 4

    asyncio.run(body())
