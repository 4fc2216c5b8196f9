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


_READS = frozenset((1, 2, 3, 4))  # function codes whose answer's third byte counts the data bytes


def _answer_length(buf: bytes | bytearray, at: int, request: bytes, expect: int) -> int | None:
    """Length of the answer to `request` that would start at `at` (its unit, then its function for a normal
    answer, with the right byte count for a read, or the function's exception), or None if none does."""
    if len(buf) < at + 2 or buf[at] != request[0]:
        return None
    if buf[at + 1] == request[1] | 0x80:
        return 5
    if buf[at + 1] != request[1]:
        return None
    if request[1] in _READS and len(buf) > at + 2 and buf[at + 2] != expect - 5:
        return None
    return expect


def find_answer(buf: bytes | bytearray, request: bytes, expect: int) -> tuple[int, int] | None:
    """(start, end) of the first whole answer to `request` in `buf` whose CRC checks, wherever it lies:
    bytes around it (a babbling device, noise as a transceiver turns) are garbage to skip, not a reason to
    throw a good answer away. A false find needs unit, function, byte count and CRC to match by chance."""
    at = buf.find(request[:1])
    while at >= 0:
        n = _answer_length(buf, at, request, expect)
        if n is not None and at + n <= len(buf):
            frame = buf[at : at + n]
            if FramerRTU.check_CRC(bytes(frame[:-2]), int.from_bytes(frame[-2:], "big")):
                return at, at + n
        at = buf.find(request[:1], at + 1)
    return None


def missing_bytes(buf: bytes | bytearray, request: bytes, expect: int) -> int:
    """Bytes still to come of the last answer that has begun in `buf`, 0 if every one there is whole (and,
    since find_answer found none, bad), -1 if none has begun."""
    at, whole = buf.rfind(request[:1]), False
    while at >= 0:
        n = _answer_length(buf, at, request, expect)
        if n is not None and at + n > len(buf):
            return at + n - len(buf)
        whole = whole or n is not None
        at = buf.rfind(request[:1], 0, at)
    return 0 if whole else -1


def no_answer(buf: bytes | bytearray, request: bytes, expect: int) -> ReadFailure:
    """Why the bytes heard after `request` hold no answer to it: the likeliest story, for the poller."""
    unit, bad = request[0], FailureKind.BAD_RESPONSE
    at = buf.find(request[:1])
    while at >= 0:  # the first answer begun among the bytes: cut short, or whole with a bad CRC
        if (n := _answer_length(buf, at, request, expect)) is not None:
            if at + n > len(buf):
                return ReadFailure(bad, f"unit {unit}: answer cut short ({len(buf) - at} of {n} bytes)")
            return ReadFailure(FailureKind.BAD_CRC, f"unit {unit}: CRC mismatch in {buf[at : at + n].hex()}")
        at = buf.find(request[:1], at + 1)
    head = bytes(buf[:expect])
    if len(head) == expect and FramerRTU.check_CRC(head[:-2], int.from_bytes(head[-2:], "big")):
        return ReadFailure(bad, f"unit {unit}: answer is for unit {head[0]} function {head[1]}")
    shown = buf[:32].hex() + ("..." if len(buf) > 32 else "")
    return ReadFailure(bad, f"unit {unit}: no answer in {len(buf)} bytes of garbage: {shown}")
