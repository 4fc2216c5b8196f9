"""Modbus RTU frames of the reads a poller makes: the request, the length of its normal answer, and the
values of a checked answer, with pymodbus's PDU classes."""

from __future__ import annotations

from collections.abc import Sequence

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

from drivers.modbus.errors import FailureKind, ReadFailure
from drivers.modbus.planner import Block
from drivers.modbus.registers import Table

_REQUESTS = {
    Table.COIL: ReadCoilsRequest,
    Table.DISCRETE_INPUT: ReadDiscreteInputsRequest,
    Table.HOLDING: ReadHoldingRegistersRequest,
    Table.INPUT: ReadInputRegistersRequest,
}


def response_length(block: Block) -> int:
    """Bytes of the normal answer to a read of `block`: unit, function, byte count, data, CRC."""
    data = (block.count + 7) // 8 if block.table.is_bits else 2 * block.count
    return 3 + data + 2


def request_frame(unit: int, block: Block) -> bytes:
    pdu = _REQUESTS[block.table](address=block.address, count=block.count, dev_id=unit)
    return bytes(FramerRTU(DecodePDU(False)).buildFrame(pdu))


def decode_answer(frame: bytes, block: Block) -> Sequence[int] | Sequence[bool]:
    """The values of a checked answer frame, or ReadFailure for an exception or a malformed answer."""
    pdu: ModbusPDU | None = DecodePDU(False).decode(frame[1:-2])
    where = f"{block.table} {block.address}+{block.count}"
    if pdu is None:
        raise ReadFailure(FailureKind.BAD_RESPONSE, f"{where}: undecodable answer {frame.hex()}")
    if pdu.isError():
        raise ReadFailure(FailureKind.EXCEPTION, f"{where}: Modbus exception code {pdu.exception_code}")
    values: Sequence[int] | Sequence[bool] = (
        list(pdu.bits[: block.count]) if block.table.is_bits else list(pdu.registers)
    )
    if len(values) != block.count:
        raise ReadFailure(FailureKind.BAD_RESPONSE, f"{where}: answered {len(values)} values")
    return values
