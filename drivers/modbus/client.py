"""What a poller needs of a Modbus client, whatever carries it: ModbusTcpClient (drivers/modbus/tcp.py)
and ModbusRtuClient (drivers/modbus/rtu.py) both have this face, so one poller serves both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from drivers.modbus.planner import Block


class ModbusClient(Protocol):
    """Reads planned blocks of one device; a failed read raises drivers.modbus.errors.ReadFailure."""

    @property
    def connected(self) -> bool: ...

    async def read(self, block: Block) -> Sequence[int] | Sequence[bool]: ...

    def close(self) -> None: ...
