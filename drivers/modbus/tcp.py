"""Modbus TCP client: reads planned blocks from one device and says exactly why a read failed."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from drivers.modbus.errors import FailureKind, ReadFailure
from drivers.modbus.planner import Block
from drivers.modbus.registers import Table

log = logging.getLogger(__name__)


class ModbusTcpClient:
    """One connection to one Modbus TCP unit; reconnects are the caller's decision."""

    def __init__(self, host: str, port: int, unit: int, timeout_s: float) -> None:
        self.host, self.port, self.unit = host, port, unit
        # reconnect_delay=0 turns pymodbus's own reconnect loop off: the poller owns backoff.
        self._client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0, reconnect_delay_max=0
        )
        self._readers = {
            Table.HOLDING: self._client.read_holding_registers,
            Table.INPUT: self._client.read_input_registers,
            Table.COIL: self._client.read_coils,
            Table.DISCRETE_INPUT: self._client.read_discrete_inputs,
        }

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        if not await self._client.connect():
            raise ReadFailure(FailureKind.DISCONNECTED, f"cannot connect to {self.host}:{self.port}")

    def close(self) -> None:
        self._client.close()

    async def read(self, block: Block) -> Sequence[int] | Sequence[bool]:
        """The registers (or bits) of one block, exactly `block.count` of them."""
        if not self.connected:
            await self.connect()
        try:
            response = await self._readers[block.table](block.address, count=block.count, device_id=self.unit)
        except ConnectionException as exc:
            self.close()
            raise ReadFailure(FailureKind.DISCONNECTED, f"{self._where(block)}: {exc}") from exc
        except ModbusIOException as exc:
            # pymodbus reports a request that got no answer in time as an IO error
            self.close()
            raise ReadFailure(FailureKind.TIMEOUT, f"{self._where(block)}: no answer in time") from exc
        except ModbusException as exc:
            self.close()
            raise ReadFailure(FailureKind.BAD_RESPONSE, f"{self._where(block)}: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise ReadFailure(FailureKind.EXCEPTION, f"{self._where(block)}: Modbus exception code {code}")
        values: Sequence[int] | Sequence[bool] = (
            response.bits[: block.count] if block.table.is_bits else (response.registers)
        )
        if len(values) != block.count:
            raise ReadFailure(
                FailureKind.BAD_RESPONSE,
                f"{self._where(block)}: answered {len(values)} values instead of {block.count}",
            )
        return values

    def _where(self, block: Block) -> str:
        return f"{block.table} {block.address}+{block.count} on unit {self.unit}"
