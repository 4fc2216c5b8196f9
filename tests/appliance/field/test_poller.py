"""The Modbus poller against the bench's simulated slave on loopback: values, errors, recovery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

from appliance.config.models import ModbusTcpDeviceSettings
from appliance.field.poller import ModbusPoller, ReadingSink
from appliance.records import Quality, Reading
from bench.config import ModbusTcpSlave
from bench.modbus_slave import SimulatedSlave
from drivers.modbus.tcp import ModbusTcpClient
from tests.conftest import free_port
from tests.modbus_layout import Row, sim_slave, tcp_device

LAYOUT: list[Row] = [
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
    return sim_slave(LAYOUT, port)


def device_settings(
    port: int, extra: Sequence[dict[str, Any]] = (), **options: Any
) -> ModbusTcpDeviceSettings:
    return tcp_device(LAYOUT, port, extra, **{"max_gap": 2, **options})


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
    poller = poller_for(port, lambda *_: None, extra)
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


def test_a_connection_the_device_drops_is_noticed_counted_once_and_reopened() -> None:
    async def body() -> None:
        async with rig() as (slave, poller, client):
            assert (await poll(poller, client))["temp"].quality is Quality.OK
            await poll(poller, client)
            assert poller.status().connection_drops == 0  # polls on an open connection count nothing
            assert slave.disconnect() == 1  # the device hangs up between two polls
            for _ in range(200):
                if not client.connected:
                    break
                await asyncio.sleep(0.01)
            assert not client.connected, "the close never reached the client"
            back = await poll(poller, client)
            assert poller.connection_drops == 1  # noticed by the poll after the drop ...
            assert {r.quality for r in back.values()} == {Quality.OK}  # ... which reconnected at once
            assert back["temp"].value == 21.25
            await poll(poller, client)
            assert poller.status().connection_drops == 1  # one drop, counted once
            assert poller.failures == {}  # nothing failed: the drop came between reads

    asyncio.run(body())


def test_an_absent_device_is_backed_off_without_stalling_the_schedule() -> None:
    async def body() -> None:
        port = free_port()  # nothing listens here
        got: list[Sequence[Reading]] = []
        poller = poller_for(port, lambda batch, _: got.append(batch))
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
        poller = poller_for(port, lambda batch, _: got.append(batch))
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
        assert status.running is False and status.requests_per_poll == 4

    asyncio.run(body())


def gappy_sim(port: int, holes: str) -> ModbusTcpSlave:
    # 30 float32 every 12 registers: holes of 10 between points, 360 registers in all
    return ModbusTcpSlave.model_validate(
        {
            "name": "g",
            "port": port,
            "holes": holes,
            "registers": [
                {
                    "table": "holding",
                    "address": 12 * i,
                    "datatype": "float32",
                    "signal": {"type": "constant", "value": i},
                }
                for i in range(30)
            ],
        }
    )


def gappy_device(port: int, max_gap: int | str) -> ModbusTcpDeviceSettings:
    return ModbusTcpDeviceSettings.model_validate(
        {
            "type": "modbus_tcp",
            "host": "127.0.0.1",
            "port": port,
            "max_gap": max_gap,
            "registers": [
                {"channel": f"p{i}", "table": "holding", "address": 12 * i, "datatype": "float32"}
                for i in range(30)
            ],
        }
    )


def test_auto_gap_tunes_to_the_fewest_requests() -> None:
    async def body() -> ModbusPoller:
        port = free_port()
        slave = SimulatedSlave(gappy_sim(port, "zero"))
        await slave.serve()
        poller = ModbusPoller(
            "dev",
            gappy_device(port, "auto"),
            partial(ModbusTcpClient, "127.0.0.1", port, 1, 0.5),
            lambda *_: None,
        )
        client = ModbusTcpClient("127.0.0.1", port, 1, 0.5)
        try:
            assert len(poller.blocks) == 30  # starts at gap 8: holes of 10 split every point
            for _ in range(5):
                for _ in range(20):
                    readings = await poll(poller, client)
                poller.retune()
            assert {r.quality for r in readings.values()} == {Quality.OK}
            assert [readings[f"p{i}"].value for i in range(30)] == list(range(30))
        finally:
            client.close()
            await slave.shutdown()
        return poller

    poller = asyncio.run(body())
    # loopback: a request costs far more than a register, so holes are read through; 350 registers
    # need ceil(350 / 125) = 3 reads at best and the greedy plan is that best
    assert poller.max_gap > 10
    assert len(poller.blocks) == 3
    assert poller.status().max_gap_mode == "auto"


def test_a_refused_bridged_read_is_split_and_never_retried() -> None:
    async def body() -> tuple[ModbusPoller, list[dict[str, Reading]]]:
        port = free_port()
        slave = SimulatedSlave(gappy_sim(port, "invalid"))  # this device refuses reads through holes
        await slave.serve()
        poller = ModbusPoller(
            "dev",
            gappy_device(port, 20),
            partial(ModbusTcpClient, "127.0.0.1", port, 1, 0.5),
            lambda *_: None,
        )
        client = ModbusTcpClient("127.0.0.1", port, 1, 0.5)
        try:
            return poller, [await poll(poller, client) for _ in range(3)]
        finally:
            client.close()
            await slave.shutdown()

    poller, cycles = asyncio.run(body())
    assert {r.quality for r in cycles[0].values()} == {Quality.ERROR}
    assert all(r.quality is Quality.OK for cycle in cycles[1:] for r in cycle.values())
    assert len(poller.blocks) == 30 and poller.replans >= 1
    assert poller.failures == {"exception": 3}  # the three bridged reads of the first plan
