"""A simulated RS-485 line: slaves served by pymodbus's RTU server behind a paced pty line."""

from __future__ import annotations

from pathlib import Path

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer

from bench.config import RtuLine
from bench.modbus_slave import SlaveModel
from bench.rs485 import PacedLine


class SimulatedLine:
    def __init__(self, settings: RtuLine) -> None:
        self.settings = settings
        self.models = {s.unit: SlaveModel(s.unit, s.registers, s.holes) for s in settings.slaves}
        link = Path(settings.link)
        link.parent.mkdir(parents=True, exist_ok=True)
        self.line = PacedLine(link, settings.baudrate, settings.bytesize, settings.parity, settings.stopbits)
        self.line.babble = lambda: sum(m.faults.babble for m in self.models.values())
        self.server = ModbusSerialServer(
            [m.device() for m in self.models.values()],
            framer=FramerType.RTU,
            port=self.line.device_port,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            ignore_missing_devices=True,
            trace_packet=self._trace,
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data or data[0] not in self.models:
            return data
        return self.models[data[0]].faults.mangle(data)

    async def serve(self) -> None:
        self.line.start()
        await self.server.serve_forever(background=True)

    async def shutdown(self) -> None:
        await self.server.shutdown()  # type: ignore[no-untyped-call]
        self.line.stop()
