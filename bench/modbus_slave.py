"""Simulated Modbus TCP slaves on pymodbus's SimDevice simulator, with values from signals.

Each read runs the device's action, which recomputes the addressed values from their signals at
that moment, so every client sees a physical quantity that moves with time. The encoding is written
here from the Modbus rules, independently of the appliance's decoder, so the two check each other.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bench.config import ModbusTcpSlave, SimRegister

_TABLE_BY_FUNCTION = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete_input",
    3: "holding",
    6: "holding",
    16: "holding",
    22: "holding",
    23: "holding",
    4: "input",
}
_TABLES = ("coil", "discrete_input", "holding", "input")
_STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
_RANGE = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


def encode(register: SimRegister, value: float) -> list[int]:
    """The 16-bit words a device with this register's layout would serve for `value`."""
    raw = (value - register.offset) / register.scale
    fmt = _STRUCT[register.datatype]
    number: float | int = raw
    if register.datatype in _RANGE:
        low, high = _RANGE[register.datatype]
        number = min(max(round(raw), low), high)  # a real device saturates rather than wraps
    data = struct.pack(">" + fmt, number)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if register.word_order == "little":
        words.reverse()
    return [int.from_bytes(w, register.byte_order) for w in words]


class SimulatedSlave:
    """One simulated device: its register layout, its signals, and the server that serves them."""

    def __init__(self, settings: ModbusTcpSlave) -> None:
        self.settings = settings
        self.t0 = time.monotonic()
        self.reads = 0
        self.server = ModbusTcpServer(self.device(), address=(settings.host, settings.port))

    def device(self) -> SimDevice:
        blocks: list[list[SimData]] = []
        for table in _TABLES:
            regs = [r for r in self.settings.registers if r.table == table]
            if table in ("coil", "discrete_input"):
                block = [SimData(r.address, values=[False], datatype=DataType.BITS) for r in regs]
                # pymodbus needs every table to be non-empty; park unused ones at the top of the map
                block = block or [SimData(65520, values=[False] * 16, datatype=DataType.BITS)]
            else:
                block = [
                    SimData(r.address, count=r.words, values=0, datatype=DataType.REGISTERS) for r in regs
                ]
                block = block or [SimData(65535, datatype=DataType.INVALID)]
            blocks.append(block)
        return SimDevice(
            self.settings.unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]), action=self._action
        )

    async def _action(
        self,
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: Sequence[int] | Sequence[bool] | None,
    ) -> ExcCodes | None:
        table = _TABLE_BY_FUNCTION.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS  # every simulated value is driven by its signal
        self.reads += 1
        t = time.monotonic() - self.t0
        for reg in self.settings.registers:
            if reg.table != table or reg.address + reg.words <= address or reg.address >= address + count:
                continue
            value = reg.signal.at(t)
            if reg.is_bit:
                # coils and discrete inputs: 16 per register, lowest address in the lowest bit
                index, bit = reg.address // 16 - start, reg.address % 16
                registers[index] = registers[index] | (1 << bit) if value else registers[index] & ~(1 << bit)
            else:
                offset = reg.address - start
                registers[offset : offset + reg.words] = encode(reg, value)
        return None

    async def serve(self) -> None:
        await self.server.serve_forever(background=True)

    async def shutdown(self) -> None:
        await self.server.shutdown()  # type: ignore[no-untyped-call]

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when the settings asked for port 0)."""
        sockets = getattr(self.server.transport, "sockets", None)
        if sockets:
            host, port = sockets[0].getsockname()[:2]
            return str(host), int(port)
        return self.settings.host, self.settings.port


async def start_slaves(settings: Sequence[ModbusTcpSlave]) -> list[SimulatedSlave]:
    slaves = [SimulatedSlave(s) for s in settings]
    await asyncio.gather(*(s.serve() for s in slaves))
    return slaves
