"""The RTU master on a real pty: timeouts sized from the wire, writes served before queued polls, the
inter-frame silence kept, and a slave that stops answering rested without holding up the others."""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Iterator

import pytest
from pymodbus.framer import FramerRTU

from drivers.modbus.errors import FailureKind, ReadFailure
from drivers.modbus.planner import Block
from drivers.modbus.registers import Table
from drivers.modbus.rtu import Priority, RtuBus, RtuBusSettings
from drivers.modbus.rtu_frames import request_frame, response_length
from drivers.serial.format import Parity, SerialFormat

BLOCK = Block(Table.HOLDING, 0, 2, ())


def answer(unit: int) -> bytes:
    body = bytes([unit, 3, 4, 0, unit, 0, 7])
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


class FakeLine:
    """A slave end on a pty: answers units in `alive` (those in `corrupt` with a bad CRC), records (time,
    unit) of every request it sees; `babble(gap_s)` sends a random byte every `gap_s`, unasked."""

    def __init__(self, alive: set[int], delay_s: float = 0.0) -> None:
        self.corrupt: set[int] = set()
        self.noise = b""  # sent ahead of every answer, as a transceiver turning on may
        self.babbling = threading.Event()
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave = slave
        self.path = os.ttyname(slave)
        self.alive, self.delay_s = alive, delay_s
        self.seen: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        os.set_blocking(self.master, False)
        buf = b""
        while not self.stop.is_set():
            try:
                buf += os.read(self.master, 256)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            except OSError:
                return
            while len(buf) >= 8:
                frame, buf = buf[:8], buf[8:]
                self.seen.append((time.monotonic(), frame[0]))
                if frame[0] in self.alive:
                    time.sleep(self.delay_s)
                    reply = self.noise + answer(frame[0])
                    os.write(
                        self.master,
                        reply[:-1] + bytes([reply[-1] ^ 0xFF]) if frame[0] in self.corrupt else reply,
                    )

    def babble(self, gap_s: float) -> None:
        def run() -> None:
            while not self.stop.is_set():
                os.write(self.master, os.urandom(1))
                time.sleep(gap_s)

        self.babbling.set()
        self.babbler = threading.Thread(target=run, daemon=True)
        self.babbler.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        if self.babbling.is_set():
            self.babbler.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def line() -> Iterator[FakeLine]:
    fake = FakeLine({1, 2, 3}, delay_s=0.002)
    yield fake
    fake.close()


def test_settings_follow_the_character_format() -> None:
    assert RtuBusSettings("x", SerialFormat(19200)).char_time_s == pytest.approx(10 / 19200)
    assert RtuBusSettings("x", SerialFormat(9600, parity=Parity.EVEN)).char_time_s == pytest.approx(11 / 9600)
    assert RtuBusSettings("x", SerialFormat(19200)).silence_s == pytest.approx(3.5 * 10 / 19200)
    assert RtuBusSettings("x", SerialFormat(115200)).silence_s == 0.00175
    assert response_length(Block(Table.COIL, 0, 10, ())) == 3 + 2 + 2
    assert response_length(Block(Table.INPUT, 0, 10, ())) == 3 + 20 + 2


def test_answers_come_back_and_silence_is_kept(line: FakeLine) -> None:
    bus = RtuBus(RtuBusSettings(line.path, SerialFormat(19200)))
    bus.start()
    try:
        futures = [bus.submit(u, request_frame(u, BLOCK), response_length(BLOCK), 0.05) for u in (1, 2, 3, 1)]
        assert [f.result(timeout=5) for f in futures] == [answer(1), answer(2), answer(3), answer(1)]
    finally:
        bus.stop()
    gaps = [b - a for (a, _), (b, _) in zip(line.seen, line.seen[1:], strict=False)]
    # request, answer and at least 3.5 characters of silence (no pacing on a pty: the wire is instant)
    assert min(gaps) >= RtuBusSettings(line.path, SerialFormat(19200)).silence_s


def test_a_write_goes_ahead_of_queued_polls(line: FakeLine) -> None:
    bus = RtuBus(RtuBusSettings(line.path, SerialFormat(19200)))
    bus.start()
    try:
        polls = [bus.submit(1, request_frame(1, BLOCK), response_length(BLOCK), 0.05) for _ in range(5)]
        write = bus.submit(2, request_frame(2, BLOCK), response_length(BLOCK), 0.05, Priority.WRITE)
        write.result(timeout=5)
        [p.result(timeout=5) for p in polls]
    finally:
        bus.stop()
    units = [u for _, u in line.seen]
    assert units.index(2) <= 1  # the first poll may already be on the wire; the write is next


@pytest.mark.realtime(
    "an RTU slave that does not answer times out after wire time and turnaround (docs/drivers.md)"
)
def test_a_dead_slave_times_out_fast_then_rests(line: FakeLine) -> None:
    line.alive.discard(3)
    settings = RtuBusSettings(line.path, SerialFormat(19200))
    bus = RtuBus(settings)
    bus.start()
    try:
        began = time.monotonic()
        first = bus.submit(3, request_frame(3, BLOCK), response_length(BLOCK), 0.02)
        with pytest.raises(ReadFailure) as caught:
            first.result(timeout=5)
        took = time.monotonic() - began
        assert caught.value.kind is FailureKind.TIMEOUT
        # wire time of 8 + 9 bytes, the 20 ms turnaround and two silences: about 33 ms, not seconds
        assert took < 0.2
        with pytest.raises(ReadFailure):
            bus.submit(3, request_frame(3, BLOCK), response_length(BLOCK), 0.02).result(timeout=5)
        resting = bus.submit(3, request_frame(3, BLOCK), response_length(BLOCK), 0.02)
        assert resting.done()  # refused at once, nothing on the wire
        with pytest.raises(ReadFailure) as rested:
            resting.result()
        assert rested.value.kind is FailureKind.BACKED_OFF
        assert bus.submit(1, request_frame(1, BLOCK), response_length(BLOCK), 0.02).result(
            timeout=5
        ) == answer(1)
        assert bus.status()["resting_units"] == [3]
    finally:
        bus.stop()


def poll(bus: RtuBus, unit: int) -> bytes:
    return bus.submit(unit, request_frame(unit, BLOCK), response_length(BLOCK), 0.02).result(timeout=5)


@pytest.mark.realtime("a babbling RTU device cannot hold the bus: each transaction ends in bounded time")
def test_a_babbler_cannot_hold_the_bus_in_resynchronisation(line: FakeLine) -> None:
    """A byte every 0.5 ms never leaves the 1.8 ms of silence that would end a resynchronisation: the bus
    finds good answers among the garbage, and gives up on a bad one within its deadline and one frame."""
    settings = RtuBusSettings(line.path, SerialFormat(19200))
    bus = RtuBus(settings)
    bus.start()
    line.corrupt.add(2)
    line.babble(0.0005)
    try:
        assert poll(bus, 1) == answer(1)  # found among the babble
        began = time.monotonic()
        with pytest.raises(ReadFailure) as caught:
            poll(bus, 2)
        took = time.monotonic() - began
        assert caught.value.kind is FailureKind.BAD_CRC, caught.value
        # the deadline (wire time, 20 ms turnaround, silences), one more answer's worth, a little slack
        assert took < 0.035 + settings.wire_time_s(9) + settings.silence_s + 0.05, took
        assert [poll(bus, u) for u in (1, 3, 1)] == [answer(1), answer(3), answer(1)]
        status = bus.status()
    finally:
        bus.stop()
    assert status["garbage_bytes"] > 0
    assert status["resync_cutoffs"] >= 1


def test_garbage_around_an_answer_is_skipped_and_counted(line: FakeLine) -> None:
    bus = RtuBus(RtuBusSettings(line.path, SerialFormat(19200)))
    bus.start()
    try:
        assert poll(bus, 1) == answer(1)  # the port is open (opening it empties its input)
        os.write(line.master, b"\x01\x03\xff")  # a lookalike start, before the request is even sent
        line.noise = b"\x00\x01\x03"  # and after it, ahead of the answer
        assert poll(bus, 1) == answer(1)
        assert bus.status()["garbage_bytes"] == 6
    finally:
        bus.stop()


def test_a_flood_is_cut_off_and_the_slave_behind_it_rested(line: FakeLine) -> None:
    """An unpaced adapter can bring bytes faster than any baud rate: a transaction hears at most
    `max_heard_bytes`, and a unit that never answers among them is rested like a silent one."""
    bus = RtuBus(RtuBusSettings(line.path, SerialFormat(19200)))
    bus.start()
    line.alive.discard(3)
    line.babble(0)  # as fast as the pty takes it
    try:
        for _ in range(bus.rest_after_failures):
            began = time.monotonic()
            with pytest.raises(ReadFailure) as caught:
                poll(bus, 3)
            assert caught.value.kind is FailureKind.BAD_RESPONSE
            assert time.monotonic() - began < 0.5
        with pytest.raises(ReadFailure) as rested:
            poll(bus, 3)
        assert rested.value.kind is FailureKind.BACKED_OFF
    finally:
        bus.stop()
