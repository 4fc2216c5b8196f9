"""Fuzz-style robustness of the Modbus decoders and transports, with a seeded RNG and bounded work.

Whatever a device, a line or a network sends, the drivers may only answer with values or with the
errors they document: ReadFailure for reads, DecodeError for register decoding. Nothing else may escape
and nothing may hang.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import queue
import random
import select
import struct
import threading
import time
import tty
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from drivers.modbus.errors import FailureKind, ReadFailure
from drivers.modbus.planner import Block
from drivers.modbus.registers import ByteOrder, DataType, DecodeError, Point, Table
from drivers.modbus.rtu import RtuBus, RtuBusSettings
from drivers.modbus.rtu_frames import decode_answer, request_frame, response_length
from drivers.modbus.tcp import ModbusTcpClient
from drivers.serial.format import SerialFormat
from tests.conftest import free_port

_FUNCTIONS = {Table.COIL: 1, Table.DISCRETE_INPUT: 2, Table.HOLDING: 3, Table.INPUT: 4}
_FORMATS = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}


def crc16(data: bytes) -> bytes:
    """Modbus RTU CRC (reflected 0xA001, start 0xFFFF), low byte first as it goes on the wire."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def with_crc(body: bytes) -> bytes:
    return body + crc16(body)


def device_values(table: Table, address: int, count: int) -> list[int] | list[bool]:
    """What every fake device here holds: a fixed function of the address, so answers can be checked."""
    if table.is_bits:
        return [(address + i) % 3 == 0 for i in range(count)]
    return [((address + i) * 40503 + 17) & 0xFFFF for i in range(count)]


def pdu_data(table: Table, values: Sequence[int] | Sequence[bool]) -> bytes:
    """Byte count and data of a read answer's PDU."""
    if table.is_bits:
        packed = bytearray((len(values) + 7) // 8)
        for i, bit in enumerate(values):
            if bit:
                packed[i // 8] |= 1 << (i % 8)
        return bytes([len(packed)]) + bytes(packed)
    return bytes([2 * len(values)]) + b"".join(int(v).to_bytes(2, "big") for v in values)


def random_block(rng: random.Random) -> Block:
    table = rng.choice(list(Table))
    count = rng.randint(1, 60 if table.is_bits else 20)
    return Block(table, rng.randint(0, 65535 - count), count, ())


def random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def assert_values(block: Block, values: Sequence[int] | Sequence[bool]) -> None:
    assert len(values) == block.count
    for value in values:
        if block.table.is_bits:
            assert isinstance(value, bool)
        else:
            assert isinstance(value, int) and 0 <= value <= 0xFFFF


# ---------------------------------------------------------------------------------------------------------
# decode_answer


def rtu_answer(unit: int, block: Block) -> bytes:
    body = bytes([unit, _FUNCTIONS[block.table]])
    return with_crc(body + pdu_data(block.table, device_values(block.table, block.address, block.count)))


def fuzzed_frame(rng: random.Random, block: Block) -> tuple[str, bytes]:
    """A frame an RTU line might deliver for `block`: valid, damaged, or nothing like an answer."""
    good = rtu_answer(1, block)
    kind = rng.choice(
        [
            "valid",
            "bad_crc",
            "truncated",
            "truncated_recrc",
            "random",
            "random_crc",
            "other_function",
            "exception",
            "byte_count_lies",
            "extended",
            "bit_flip",
        ]
    )
    if kind == "valid":
        return kind, good
    if kind == "bad_crc":
        return kind, good[:-2] + bytes([good[-2] ^ 0x5A, good[-1]])
    if kind == "truncated":
        return kind, good[: rng.randint(0, len(good) - 1)]
    if kind == "truncated_recrc":
        return kind, with_crc(good[: rng.randint(0, len(good) - 3)])
    if kind == "random":
        return kind, random_bytes(rng, rng.choice([rng.randint(0, 8), rng.randint(0, 300)]))
    if kind == "random_crc":
        return kind, with_crc(random_bytes(rng, rng.randint(0, 260)))
    if kind == "other_function":
        function = rng.randrange(256)
        return kind, with_crc(bytes([1, function]) + random_bytes(rng, rng.randint(0, 40)))
    if kind == "exception":
        return kind, with_crc(bytes([1, _FUNCTIONS[block.table] | 0x80, rng.randrange(256)]))
    if kind == "byte_count_lies":
        body = bytearray(good[:-2])
        body[2] = rng.randrange(256)
        return kind, with_crc(bytes(body))
    if kind == "extended":
        return kind, with_crc(good[:-2] + random_bytes(rng, rng.randint(1, 20)))
    flipped = bytearray(good)
    flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    return kind, bytes(flipped)


def test_decode_answer_only_returns_values_or_raises_read_failure() -> None:
    rng = random.Random(20240611)
    began = time.monotonic()
    kinds: dict[str, int] = {}
    for case in range(4000):
        block = random_block(rng)
        kind, frame = fuzzed_frame(rng, block)
        kinds[kind] = kinds.get(kind, 0) + 1
        try:
            values = decode_answer(frame, block)
        except ReadFailure as failure:
            assert isinstance(failure.kind, FailureKind)
            assert kind != "valid", f"case {case}: a valid answer was refused: {failure}"
            continue
        except Exception as exc:
            raise AssertionError(
                f"case {case} ({kind}): decode_answer({frame.hex()}, {block}) raised {exc!r}"
            ) from exc
        assert_values(block, values)
        if kind in ("valid", "bad_crc"):  # decode_answer trusts the bus for the CRC check
            assert list(values) == device_values(block.table, block.address, block.count)
    assert time.monotonic() - began < 5
    assert len(kinds) == 11 and min(kinds.values()) > 200


# ---------------------------------------------------------------------------------------------------------
# Point.decode and Point.decode_from


def random_point(rng: random.Random, kind: str = "scalar") -> Point:
    """A point of any table and layout: "scalar" (one number or bit, or a string), "plain" (what
    `decode_from` is for) or "waveform" (samples in a row)."""
    table = rng.choice([Table.HOLDING, Table.INPUT] if kind != "scalar" else list(Table))
    orders = [ByteOrder.BIG] if kind == "plain" else list(ByteOrder)
    datatype = rng.choice(list(_FORMATS) if kind != "scalar" else list(DataType))
    if kind == "waveform":
        length = rng.randint(2, 8)
    elif datatype is DataType.STRING:
        length = rng.randint(1, 4)
    else:
        length = 1
    return Point(
        "p",
        table,
        rng.randint(0, 100),
        datatype,
        rng.choice(orders),
        rng.choice(orders),
        scale=rng.choice([1.0, 0.1, -2.5, 1e-3]),
        offset=rng.choice([0.0, -40.0, 1e6]),
        length=length,
    )


def random_word(rng: random.Random) -> int | bool:
    return rng.choice(
        [
            rng.randint(0, 0xFFFF),
            rng.randint(0, 0xFFFF),
            rng.randint(0, 0xFFFF),
            rng.choice([0, 0xFFFF, 0x8000, 0x7FFF, 0x2020]),
            rng.randint(-(2**40), -1),
            rng.randint(0x10000, 2**70),
            rng.choice([True, False]),
        ]
    )


def random_words(rng: random.Random, point: Point) -> list[int | bool]:
    length = point.count if rng.random() < 0.6 else rng.randint(0, point.count + 3)
    if rng.random() < 0.5:  # mostly good words, so that decoding gets past the checks
        return [rng.randint(0, 0xFFFF) for _ in range(length)]
    return [random_word(rng) for _ in range(length)]


def are_words(point: Point, words: Sequence[int | bool]) -> bool:
    """Whether `point` must decode `words`: the right count of 16-bit values (any value for a bit)."""
    if len(words) != point.count:
        return False
    return point.table.is_bits or point.datatype is DataType.BOOL or all(0 <= w <= 0xFFFF for w in words)


def reference(point: Point, words: Sequence[int | bool]) -> float | str:
    """The value of valid words, decoded here from the Modbus rules."""
    if point.table.is_bits or point.datatype is DataType.BOOL:
        return (1.0 if words[0] else 0.0) * point.scale + point.offset
    if point.datatype is DataType.STRING:
        data = b"".join(
            int(w).to_bytes(2, "big" if point.byte_order is ByteOrder.BIG else "little") for w in words
        )
        return data.decode("latin-1").rstrip("\x00 ")
    ordered = list(words) if point.word_order is ByteOrder.BIG else list(reversed(words))
    data = b"".join(
        int(w).to_bytes(2, "big" if point.byte_order is ByteOrder.BIG else "little") for w in ordered
    )
    raw: float = struct.unpack(">" + _FORMATS[point.datatype], data)[0]
    return raw * point.scale + point.offset


def same(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def test_point_decode_only_returns_values_or_raises_decode_error() -> None:
    """Numbers, bits and strings: a float (text for a string) or DecodeError, whatever the words."""
    rng = random.Random(7)
    began = time.monotonic()
    decoded = refused = 0
    for case in range(4000):
        point = random_point(rng)
        words = random_words(rng, point)
        try:
            value = point.decode(words)
        except DecodeError:
            refused += 1
            assert not are_words(point, words), f"case {case}: {point} refused valid words {words}"
            continue
        except Exception as exc:
            raise AssertionError(f"case {case}: {point}.decode({words}) raised {exc!r}") from exc
        decoded += 1
        assert are_words(point, words), f"case {case}: {point}.decode({words}) accepted bad words"
        kind = str if point.datatype is DataType.STRING and not point.table.is_bits else float
        assert isinstance(value, kind), f"case {case}: {point}.decode({words}) returned {value!r}"
        assert same(value, reference(point, words)), f"case {case}: {point}.decode({words}) = {value!r}"
    assert decoded > 1000 and refused > 1000
    assert time.monotonic() - began < 5


def test_point_decode_samples_only_returns_samples_or_raises_decode_error() -> None:
    rng = random.Random(8)
    began = time.monotonic()
    decoded = 0
    for case in range(2000):
        point = random_point(rng, "waveform")
        words = random_words(rng, point)
        try:
            samples = point.decode_samples(words)
        except DecodeError:
            assert not are_words(point, words), f"case {case}: {point} refused valid words {words}"
            continue
        except Exception as exc:
            raise AssertionError(f"case {case}: {point}.decode_samples({words}) raised {exc!r}") from exc
        decoded += 1
        assert are_words(point, words), f"case {case}: {point}.decode_samples({words}) accepted bad words"
        assert samples.dtype == np.float64 and samples.shape == (point.length,)
        per = point.datatype.registers
        one = replace(point, length=1)
        expected = [reference(one, words[i : i + per]) for i in range(0, len(words), per)]
        assert all(same(float(a), b) for a, b in zip(samples, expected, strict=True)), f"case {case}"
    assert decoded > 500
    assert time.monotonic() - began < 5


def test_point_decode_from_only_returns_floats_or_raises_decode_error() -> None:
    """`decode_from` on the points it is for (big-endian registers), fed blocks of any length."""
    rng = random.Random(11)
    began = time.monotonic()
    escaped: list[str] = []
    for case in range(3000):
        point = random_point(rng, "plain")
        assert point.is_plain
        offset = rng.randint(0, 6)
        nbytes = 2 * (offset + point.count) if rng.random() < 0.6 else rng.randint(0, 2 * (offset + 5))
        packed = random_bytes(rng, nbytes)
        try:
            value = point.decode_from(packed, offset)
        except DecodeError:
            continue
        except Exception as exc:
            escaped.append(f"case {case}: {point}.decode_from({packed.hex()!r}, {offset}) raised {exc!r}")
            continue
        assert isinstance(value, float)
        words = [int.from_bytes(packed[i : i + 2], "big") for i in range(2 * offset, len(packed), 2)]
        assert same(value, point.decode(words[: point.count]))
    assert time.monotonic() - began < 5
    assert not escaped, f"{len(escaped)} of 3000 cases raised other than DecodeError, e.g. {escaped[0]}"


# ---------------------------------------------------------------------------------------------------------
# RtuBus against a fake slave on a pty

UNIT = 7
BAD = ["garbage", "long_garbage", "truncated", "bad_crc", "wrong_unit", "wrong_function"]
# answered without a failure: "exception" is a well-formed frame the bus hands on; "trailing_noise" is a
# good answer followed by line noise, which the next transaction must discard; "garbage_first" is noise
# (a babbling device, a transceiver turning on) ahead of a good answer, which the bus skips and counts
GOOD = ["valid", "exception", "trailing_noise", "garbage_first"]
NOT_GOOD = [*BAD, "silence"]


@dataclass
class FakeSlave:
    """Answers each request on the master side of a pty as told by the behaviours queued for it."""

    master: int
    rng: random.Random
    behaviours: queue.Queue[str] = field(default_factory=queue.Queue)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    answered: int = 0

    def run(self) -> None:
        buf = b""
        while not self.stop.is_set():
            readable, _, _ = select.select([self.master], [], [], 0.02)
            if not readable:
                continue
            try:
                buf += os.read(self.master, 4096)
            except OSError:
                continue  # the bus's end is not open (yet)
            while len(buf) >= 8:
                request, buf = buf[:8], buf[8:]
                try:
                    self.answer(request)
                except Exception as exc:  # reported by the test, not lost in this thread
                    self.errors.append(repr(exc))

    def answer(self, request: bytes) -> None:
        if with_crc(request[:6]) != request:
            self.errors.append(f"request with a bad CRC: {request.hex()}")
            return
        unit, function = request[0], request[1]
        address, count = struct.unpack(">HH", request[2:6])
        table = {v: k for k, v in _FUNCTIONS.items()}[function]
        good = with_crc(bytes([unit, function]) + pdu_data(table, device_values(table, address, count)))
        behaviour = self.behaviours.get_nowait()
        rng = self.rng
        wire = {
            "valid": good,
            "exception": with_crc(bytes([unit, function | 0x80, 2])),
            "trailing_noise": good + random_bytes(rng, rng.randint(1, 12)),
            "silence": b"",
            "garbage": random_bytes(rng, rng.randint(1, len(good) - 1)),
            "long_garbage": random_bytes(rng, len(good) + rng.randint(0, 30)),
            "truncated": good[: rng.randint(1, len(good) - 1)],
            "bad_crc": good[:-1] + bytes([good[-1] ^ 0xFF]),
            "wrong_unit": with_crc(bytes([unit + 1]) + good[1:-2]),
            "wrong_function": with_crc(bytes([unit, 1 + function % 4]) + good[2:-2]),
            "garbage_first": random_bytes(rng, rng.randint(1, 6)) + good,
        }[behaviour]
        self.answered += 1  # before the answer goes out: the test may look as soon as it has it
        if wire:
            os.write(self.master, wire)


@contextlib.contextmanager
def bus_on_pty(rng: random.Random) -> Iterator[tuple[RtuBus, FakeSlave]]:
    master, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    fake = FakeSlave(master, rng)
    thread = threading.Thread(target=fake.run, name="fake-rtu-slave", daemon=True)
    bus = RtuBus(RtuBusSettings(os.ttyname(slave_fd), SerialFormat(19200)))
    thread.start()
    bus.start()
    try:
        yield bus, fake
    finally:
        bus.stop()
        fake.stop.set()
        thread.join(5)
        os.close(slave_fd)
        os.close(master)
        assert not thread.is_alive(), "the fake slave did not stop"


def test_rtu_bus_survives_a_slave_that_answers_garbage() -> None:
    rng = random.Random(1234)
    began = time.monotonic()
    outcomes: dict[str, set[str]] = {}
    with bus_on_pty(random.Random(99)) as (bus, fake):
        previous = "valid"
        for case in range(90):
            # after a bad answer the very next good one must be read intact: the bus resynchronised
            # (never two failures in a row: a slave that twice gives no answer is rested)
            behaviour = rng.choice(GOOD) if previous in NOT_GOOD else rng.choice(NOT_GOOD)
            block = random_block(rng)
            fake.behaviours.put(behaviour)
            future = bus.submit(UNIT, request_frame(UNIT, block), response_length(block), turnaround_s=0.1)
            try:
                frame = future.result(timeout=3)
            except ReadFailure as failure:
                outcomes.setdefault(behaviour, set()).add(str(failure.kind))
                assert behaviour not in GOOD, f"case {case}: {behaviour} answer refused: {failure}"
            except concurrent.futures.TimeoutError:
                raise AssertionError(
                    f"case {case}: {behaviour}: the bus did not resolve within 3 s"
                ) from None
            else:
                outcomes.setdefault(behaviour, set()).add("answer")
                assert behaviour in GOOD, f"case {case}: {behaviour} answer accepted: {frame.hex()}"
                if behaviour == "exception":
                    try:
                        decode_answer(frame, block)
                    except ReadFailure as failure:
                        assert failure.kind is FailureKind.EXCEPTION
                    else:
                        raise AssertionError(f"case {case}: exception frame {frame.hex()} decoded")
                else:
                    assert decode_answer(frame, block) == device_values(
                        block.table, block.address, block.count
                    ), f"case {case}: {behaviour} after {previous}"
            previous = behaviour
        assert fake.answered == 90
    assert fake.errors == []
    assert set(outcomes) == {*NOT_GOOD, *GOOD}
    assert outcomes["silence"] == {"timeout"}
    assert outcomes["truncated"] == {"bad_response"}
    assert outcomes["bad_crc"] == {"bad_crc"}
    assert bus.counts["garbage_bytes"] > 0
    assert time.monotonic() - began < 15


# ---------------------------------------------------------------------------------------------------------
# ModbusTcpClient against a raw server that answers badly

TCP_BAD = [
    "garbage",
    "truncated",
    "wrong_tid",
    "wrong_protocol",
    "length_too_long",
    "length_too_short",
    "short_data",
    "wrong_function",
    "close",
    "silence",
    "garbage_first",
    "split_slowly",
]
TCP_GOOD = ["valid", "exception", "trailing_noise"]


@dataclass
class RawServer:
    rng: random.Random
    behaviours: list[str] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(7)
                tid, _, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                if not self.behaviours:
                    self.errors.append(f"unexpected request {(header + pdu).hex()}")
                    continue
                if not await self.answer(writer, tid, unit, pdu, self.behaviours.pop(0)):
                    writer.close()
                    return

    async def answer(self, writer: asyncio.StreamWriter, tid: int, unit: int, pdu: bytes, how: str) -> bool:
        rng = self.rng
        function = pdu[0]
        address, count = struct.unpack(">HH", pdu[1:5])
        table = {v: k for k, v in _FUNCTIONS.items()}[function]
        data = pdu_data(table, device_values(table, address, count))

        def frame(body: bytes, tid: int = tid, protocol: int = 0, extra: int = 0) -> bytes:
            return struct.pack(">HHHB", tid, protocol, len(body) + 1 + extra, unit) + body

        good = frame(bytes([function]) + data)
        if how == "close":
            return False
        wire = {
            "valid": good,
            "exception": frame(bytes([function | 0x80, 2])),
            "trailing_noise": good + random_bytes(rng, rng.randint(1, 5)),
            "silence": b"",
            "garbage": random_bytes(rng, rng.randint(1, 40)),
            "truncated": good[: rng.randint(1, len(good) - 1)],
            "wrong_tid": frame(bytes([function]) + data, tid=(tid + 1 + rng.randrange(1000)) & 0xFFFF),
            "wrong_protocol": frame(bytes([function]) + data, protocol=rng.randint(1, 0xFFFF)),
            "length_too_long": frame(bytes([function]) + data, extra=rng.randint(1, 50)),
            "length_too_short": frame(bytes([function]) + data, extra=-rng.randint(1, len(data))),
            "short_data": frame(bytes([function]) + data[: rng.randint(0, len(data) - 1)]),
            "wrong_function": frame(bytes([1 + function % 4]) + data),
            "garbage_first": random_bytes(rng, rng.randint(1, 9)) + good,
            "split_slowly": good,
        }[how]
        if how == "split_slowly":  # a good answer in pieces, as a slow gateway sends it: must be read
            cut = rng.randint(1, len(wire) - 1)
            writer.write(wire[:cut])
            await writer.drain()
            await asyncio.sleep(0.02)
            wire = wire[cut:]
        writer.write(wire)
        await writer.drain()
        return True


def test_tcp_client_read_only_returns_values_or_raises_read_failure() -> None:
    async def body() -> tuple[dict[str, set[str]], RawServer]:
        rng = random.Random(4321)
        raw = RawServer(random.Random(5))
        port = free_port()
        server = await asyncio.start_server(raw.handle, "127.0.0.1", port)
        client = ModbusTcpClient("127.0.0.1", port, 1, 0.2)
        outcomes: dict[str, set[str]] = {}
        bad = rng.sample(TCP_BAD, len(TCP_BAD))
        try:
            for case in range(40):
                # every bad answer at least once, each followed by a good one that must be read as usual
                how = bad[case // 2 % len(bad)] if case % 2 == 0 else rng.choice(TCP_GOOD)
                block = random_block(rng)
                raw.behaviours[:] = [how]
                try:
                    values = await asyncio.wait_for(client.read(block), 3)
                except ReadFailure as failure:
                    outcomes.setdefault(how, set()).add(str(failure.kind))
                    if how == "exception":
                        assert failure.kind is FailureKind.EXCEPTION, f"case {case}: {failure}"
                    else:
                        assert how not in ("valid", "trailing_noise"), f"case {case}: {how}: {failure}"
                    continue
                except TimeoutError:
                    raise AssertionError(f"case {case}: {how}: read() did not finish within 3 s") from None
                except Exception as exc:
                    raise AssertionError(f"case {case}: {how}: read({block}) raised {exc!r}") from exc
                outcomes.setdefault(how, set()).add("values")
                assert_values(block, values)
                assert list(values) == device_values(block.table, block.address, block.count), (
                    f"case {case}: {how}: wrong values"
                )
        finally:
            client.close()
            server.close()
            for writer in raw.writers:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            await server.wait_closed()
        return outcomes, raw

    began = time.monotonic()
    outcomes, raw = asyncio.run(body())
    assert raw.errors == []
    assert outcomes.get("valid") == {"values"} and outcomes.get("exception") == {"exception"}
    assert set(outcomes) == {*TCP_BAD, *TCP_GOOD}
    assert outcomes["silence"] == outcomes["wrong_tid"] == {"timeout"}
    assert outcomes["split_slowly"] == {"values"}
    assert time.monotonic() - began < 15
