"""The simulated Modbus TCP slave, read by a plain pymodbus client over loopback."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bench.config import ModbusTcpSlave
from bench.modbus_slave import SimulatedSlave, encode


def slave_settings(*registers: dict[str, Any]) -> ModbusTcpSlave:
    return ModbusTcpSlave.model_validate({"name": "t", "port": 0, "unit": 3, "registers": list(registers)})


def const(value: float) -> dict[str, Any]:
    return {"type": "constant", "value": value}


async def with_client(settings: ModbusTcpSlave, body: Any) -> Any:
    slave = SimulatedSlave(settings)
    await slave.serve()
    host, port = slave.address
    client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
    try:
        assert await client.connect()
        return await body(client)
    finally:
        client.close()
        await slave.shutdown()


@pytest.mark.parametrize(
    ("datatype", "fmt", "value"),
    [("int16", "h", -300), ("uint32", "I", 3_000_000_000), ("float32", "f", 1.25), ("float64", "d", -7.5)],
)
@pytest.mark.parametrize(
    ("byte_order", "word_order"), [("big", "big"), ("big", "little"), ("little", "little")]
)
def test_encode_matches_the_modbus_layout(
    datatype: str, fmt: str, value: float, byte_order: str, word_order: str
) -> None:
    settings = slave_settings(
        {
            "table": "holding",
            "address": 0,
            "datatype": datatype,
            "byte_order": byte_order,
            "word_order": word_order,
            "signal": const(value),
        }
    )
    data = struct.pack(">" + fmt, value)
    expected = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        expected.reverse()
    assert encode(settings.registers[0], value) == [int.from_bytes(w, byte_order) for w in expected]  # type: ignore[arg-type]


def test_integers_saturate_and_scale() -> None:
    settings = slave_settings(
        {"table": "input", "address": 0, "datatype": "int16", "scale": 0.1, "offset": 100, "signal": const(0)}
    )
    reg = settings.registers[0]
    assert encode(reg, 102.5) == [25]
    assert encode(reg, 1e9) == [0x7FFF]
    assert encode(reg, -1e9) == [0x8000]


def test_serves_every_table_to_a_real_client() -> None:
    settings = slave_settings(
        {"table": "input", "address": 4, "datatype": "float32", "signal": const(21.5)},
        {"table": "holding", "address": 100, "datatype": "uint16", "signal": const(7)},
        {"table": "coil", "address": 3, "datatype": "bool", "signal": const(1)},
        {"table": "discrete_input", "address": 18, "datatype": "bool", "signal": const(1)},
        {"table": "discrete_input", "address": 19, "datatype": "bool", "signal": const(0)},
    )

    async def body(client: AsyncModbusTcpClient) -> None:
        ir = await client.read_input_registers(4, count=2, device_id=3)
        assert struct.unpack(">f", struct.pack(">HH", *ir.registers))[0] == 21.5
        hr = await client.read_holding_registers(100, count=1, device_id=3)
        assert hr.registers == [7]
        coils = await client.read_coils(3, count=1, device_id=3)
        assert coils.bits[0] is True
        di = await client.read_discrete_inputs(18, count=2, device_id=3)
        assert list(di.bits[:2]) == [True, False]

    asyncio.run(with_client(settings, body))


def test_unknown_addresses_and_writes_get_exception_responses() -> None:
    settings = slave_settings({"table": "holding", "address": 0, "signal": const(1)})

    async def body(client: AsyncModbusTcpClient) -> None:
        missing = await client.read_holding_registers(50, count=1, device_id=3)
        assert missing.isError() and missing.exception_code == 2  # ILLEGAL DATA ADDRESS
        no_input_table = await client.read_input_registers(0, count=1, device_id=3)
        assert no_input_table.isError()
        write = await client.write_register(0, 5, device_id=3)
        assert write.isError()

    asyncio.run(with_client(settings, body))


def test_values_follow_their_signal_over_time() -> None:
    settings = slave_settings(
        {
            "table": "input",
            "address": 0,
            "datatype": "float32",
            "signal": {"type": "ramp", "start": 0, "per_s": 100.0},
        }
    )

    async def body(client: AsyncModbusTcpClient) -> list[float]:
        seen = []
        for _ in range(3):
            regs = (await client.read_input_registers(0, count=2, device_id=3)).registers
            seen.append(struct.unpack(">f", struct.pack(">HH", *regs))[0])
            await asyncio.sleep(0.05)
        return seen

    seen = asyncio.run(with_client(settings, body))
    assert seen == sorted(seen) and seen[-1] - seen[0] >= 5.0
