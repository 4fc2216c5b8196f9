"""Simulated Modbus TCP slaves on pymodbus's SimDevice simulator, with values from signals.

Each read runs the device's action, which recomputes the addressed values from their signals at
that moment, so every client sees a physical quantity that moves with time. The encoding is written
here from the Modbus rules, independently of the appliance's decoder, so the two check each other.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bench.config import ModbusTcpSlave, SimRegister
from bench.signals import Text, Vibration

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


def encode_text(register: SimRegister, text: str) -> list[int]:
    """`length` registers of two characters, padded with NULs; the first character in the high byte
    unless the byte order is little."""
    data = text.encode("latin-1", errors="replace")[: 2 * register.length].ljust(2 * register.length, b"\0")
    return [int.from_bytes(data[i : i + 2], register.byte_order) for i in range(0, len(data), 2)]


def encode_value(register: SimRegister, t: float, fault: float) -> list[int]:
    """The words of a register at time `t`: a text, one number, or a block of samples."""
    signal = register.signal
    if isinstance(signal, Text):
        return encode_text(register, signal.value)
    if register.length == 1:
        return encode(register, signal.at(t))
    if isinstance(signal, Vibration):
        samples = signal.block(t, register.length, register.sample_rate_hz, fault)
    else:
        samples = [
            signal.at(t - (register.length - 1 - i) / register.sample_rate_hz) for i in range(register.length)
        ]
    return [word for sample in samples for word in encode(register, sample)]


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


@dataclass
class Faults:
    """What a simulated slave does wrong, changed on command while it runs."""

    no_answer: bool = False  # requests go unanswered
    late_s: float = 0.0  # answers come this late
    exception: int | None = None  # every request is answered with this exception code
    bad_crc: bool = False  # RTU: the answer's CRC is wrong
    garbage: bool = False  # random bytes go out before the answer
    truncate: bool = False  # only the first half of the answer goes out
    bearing_fault: float = 0.0  # physics, not protocol: severity 0..1 of a bearing fault in vibration signals
    babble: float = 0.0  # RTU: share 0..1 of the line's time filled with random bytes, unasked

    KINDS = ("no_answer", "late_s", "exception", "bad_crc", "garbage", "truncate", "bearing_fault", "babble")

    def clear(self) -> None:
        self.no_answer, self.late_s, self.exception = False, 0.0, None
        self.bad_crc = self.garbage = self.truncate = False
        self.bearing_fault = self.babble = 0.0

    def active(self) -> dict[str, object]:
        return {k: v for k in self.KINDS if (v := getattr(self, k))}

    def mangle(self, frame: bytes) -> bytes:
        """The bytes that go on the wire instead of a good answer `frame`."""
        if self.no_answer:
            return b""
        if self.bad_crc:
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if self.truncate:
            frame = frame[: max(1, len(frame) // 2)]
        if self.garbage:
            frame = os.urandom(7) + frame
        return frame


class SlaveModel:
    """One simulated device: its register layout, its signals and its faults, as a pymodbus SimDevice."""

    def __init__(self, unit: int, registers: Sequence[SimRegister], holes: str = "invalid") -> None:
        self.unit = unit
        self.registers = registers
        self.holes = holes
        self.faults = Faults()
        self.t0 = time.monotonic()
        self.reads = 0

    def device(self) -> SimDevice:
        blocks: list[list[SimData]] = []
        for table in _TABLES:
            regs = [r for r in self.registers if r.table == table]
            if table in ("coil", "discrete_input"):
                block = [SimData(r.address, values=[False], datatype=DataType.BITS) for r in regs]
                # pymodbus needs every table to be non-empty; park unused ones at the top of the map
                block = block or [SimData(65520, values=[False] * 16, datatype=DataType.BITS)]
            elif regs and self.holes == "zero":  # one span from the first point to the last; holes read 0
                first = min(r.address for r in regs)
                span = max(r.address + r.words for r in regs) - first
                block = [SimData(first, count=span, values=0, datatype=DataType.REGISTERS)]
            else:
                block = [
                    SimData(r.address, count=r.words, values=0, datatype=DataType.REGISTERS) for r in regs
                ]
                block = block or [SimData(65535, datatype=DataType.INVALID)]
            blocks.append(block)
        return SimDevice(self.unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]), action=self._action)

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
        if self.faults.late_s:
            await asyncio.sleep(self.faults.late_s)
        if self.faults.exception is not None:
            return ExcCodes(self.faults.exception)
        if set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS  # every simulated value is driven by its signal
        self.reads += 1
        t = time.monotonic() - self.t0
        if table in ("coil", "discrete_input"):
            # for bit tables pymodbus passes the 16-bit registers the request touches, not the bits
            address, count = address // 16 * 16, count * 16
        for reg in self.registers:
            if reg.table != table or reg.address + reg.words <= address or reg.address >= address + count:
                continue
            if reg.is_bit:
                value = reg.signal.at(t)
                # coils and discrete inputs: 16 per register, lowest address in the lowest bit
                index, bit = reg.address // 16 - start, reg.address % 16
                registers[index] = registers[index] | (1 << bit) if value else registers[index] & ~(1 << bit)
            else:
                offset = reg.address - start
                registers[offset : offset + reg.words] = encode_value(reg, t, self.faults.bearing_fault)
        return None


class SimulatedSlave:
    """A Modbus TCP device on loopback."""

    def __init__(self, settings: ModbusTcpSlave) -> None:
        self.settings = settings
        self.model = SlaveModel(settings.unit, settings.registers, settings.holes)
        self.server = ModbusTcpServer(
            self.model.device(), address=(settings.host, settings.port), trace_packet=self._trace
        )

    @property
    def faults(self) -> Faults:
        return self.model.faults

    @property
    def reads(self) -> int:
        return self.model.reads

    def _trace(self, sending: bool, data: bytes) -> bytes:
        return self.faults.mangle(data) if sending else data

    def disconnect(self) -> int:
        """Drop every client connection, as a device reboot or a cable pull would; returns how many."""
        connections = list(self.server.active_connections.values())
        for connection in connections:
            connection.close()
        return len(connections)

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
