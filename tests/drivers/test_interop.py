"""Modbus interop against independent peers: libmodbus's `mbpoll` reads the bench's simulated TCP and RTU
slaves, and our driver reads a Modbus TCP server that is not pymodbus (pyModbusTCP) as well as the bench.

A missing peer fails the test (CI installs both): `apt-get install mbpoll`, `pip install pyModbusTCP`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

from appliance.config.models import ModbusTcpDeviceSettings
from appliance.field.poller import ModbusPoller
from appliance.records import Quality, Reading
from bench.config import ModbusTcpSlave, RtuLine, SimRegister
from bench.modbus_slave import SimulatedSlave, encode
from bench.rtu_line import SimulatedLine
from drivers.modbus.planner import Block
from drivers.modbus.registers import Table
from drivers.modbus.tcp import ModbusTcpClient
from tests.conftest import free_port
from tests.modbus_layout import Row, sim_slave, tcp_device

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------------------
# peers


def mbpoll_path() -> str:
    path = shutil.which("mbpoll")
    if path is None:
        pytest.fail(
            "mbpoll is not installed (Debian package `mbpoll`); the interop tests need it", pytrace=False
        )
    return path


def pymodbustcp_server() -> Any:
    """The `pyModbusTCP.server` module, or a failure saying how to get it."""
    try:
        import pyModbusTCP.server  # type: ignore[import-untyped]
    except ImportError as exc:
        pytest.fail(f"pyModbusTCP is not installed (`pip install pyModbusTCP`): {exc}", pytrace=False)
    return pyModbusTCP.server


@contextlib.contextmanager
def in_background(start: Callable[[], Awaitable[T]], stop: Callable[[T], Awaitable[None]]) -> Iterator[T]:
    """Run an asyncio peer in a thread with its own event loop while blocking clients talk to it."""
    ready = threading.Event()
    errors: list[BaseException] = []
    started: list[T] = []
    handles: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        quit_event = asyncio.Event()
        handles.append((asyncio.get_running_loop(), quit_event))
        try:
            started.append(await start())
        finally:
            ready.set()
        try:
            await quit_event.wait()
        finally:
            await stop(started[0])

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)
        ready.set()

    thread = threading.Thread(target=run, name="interop-peer", daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "the simulated peer did not start within 10 s"
        if errors:
            raise errors[0]
        yield started[0]
    finally:
        if handles:
            loop, quit_event = handles[0]
            with contextlib.suppress(RuntimeError):  # the loop already ended after a failed start
                loop.call_soon_threadsafe(quit_event.set)
        thread.join(10)
        assert not thread.is_alive(), "the simulated peer did not stop within 10 s"
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------------------------------------------
# mbpoll

_VALUE_LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)(?:\s+\((-?\d+)\))?\s*$")


def mbpoll(target: str, *options: str) -> dict[int, tuple[str, str | None]]:
    """One poll by mbpoll: {reference: (value as printed, signed value in brackets if any)}."""
    command = [mbpoll_path(), "-1", "-q", "-o", "1", *options, target]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(command)} did not finish within 20 s") from exc
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}: {done.stdout}{done.stderr}"
    values: dict[int, tuple[str, str | None]] = {}
    for line in done.stdout.splitlines():
        if match := _VALUE_LINE.match(line.strip()):
            values[int(match[1])] = (match[2], match[3])
    assert values, f"no values in mbpoll's output: {done.stdout!r}"
    return values


def words(values: dict[int, tuple[str, str | None]]) -> dict[int, int]:
    """mbpoll's 16-bit registers as unsigned words (it prints the unsigned value first)."""
    return {ref: int(printed) for ref, (printed, _) in values.items()}


def signed(values: dict[int, tuple[str, str | None]]) -> dict[int, int]:
    return {ref: int(neg if neg is not None else printed) for ref, (printed, neg) in values.items()}


def floats(values: dict[int, tuple[str, str | None]]) -> dict[int, float]:
    return {ref: float(printed) for ref, (printed, _) in values.items()}


def register(
    table: str, address: int, datatype: str, value: float, word_order: str = "big", **extra: Any
) -> dict[str, Any]:
    return {
        "table": table,
        "address": address,
        "datatype": datatype,
        "word_order": word_order,
        "signal": {"type": "constant", "value": value},
        **extra,
    }


def mbpoll_layout(k: int) -> list[dict[str, Any]]:
    """Values mbpoll can show, different for each `k` so two units on one line are told apart."""
    return [
        register("holding", 0, "uint16", 40000 + k),  # above 32767: mbpoll shows it unsigned
        register("holding", 1, "int16", -1234 - k),
        register("holding", 2, "float32", 21.25 + k),  # big word order: mbpoll -B
        register("holding", 4, "float32", -3.5 - k, word_order="little"),  # mbpoll's default order
        register("holding", 6, "int32", -123456 - k),
        register("input", 10, "uint16", 777 + k),
        register("input", 11, "float32", 0.5 + k),
        register("coil", 3, "bool", 1),
        register("coil", 4, "bool", 0),
        register("coil", 5, "bool", k % 2),
        register("discrete_input", 18, "bool", 0),
        register("discrete_input", 19, "bool", 1),
    ]


def check_with_mbpoll(target: str, registers: Sequence[SimRegister], *line: str) -> None:
    """Every table of a slave, read by mbpoll at 1-based references (its default), against the words the
    simulator encodes and the values they stand for."""
    by_address: dict[tuple[str, int], SimRegister] = {(r.table, r.address): r for r in registers}

    def value(table: str, address: int) -> float:
        return by_address[(table, address)].signal.at(0.0)

    # holding 0..7 as raw 16-bit words, in one request: exactly the simulator's encoding
    expected_words: list[int] = []
    for address in (0, 1, 2, 4, 6):
        expected_words += encode(by_address[("holding", address)], value("holding", address))
    raw = mbpoll(target, *line, "-t", "4", "-r", "1", "-c", "8")
    assert words(raw) == {ref: w for ref, w in zip(range(1, 9), expected_words, strict=True)}
    assert words(raw)[1] == value("holding", 0)
    assert signed(mbpoll(target, *line, "-t", "4", "-r", "2")) == {2: value("holding", 1)}
    # typed reads: -B is big-endian word order, mbpoll's default is the low word first
    assert floats(mbpoll(target, *line, "-t", "4:float", "-B", "-r", "3")) == {3: value("holding", 2)}
    assert floats(mbpoll(target, *line, "-t", "4:float", "-r", "5")) == {5: value("holding", 4)}
    assert signed(mbpoll(target, *line, "-t", "4:int", "-B", "-r", "7")) == {7: value("holding", 6)}
    # input registers
    assert words(mbpoll(target, *line, "-t", "3", "-r", "11")) == {11: value("input", 10)}
    assert floats(mbpoll(target, *line, "-t", "3:float", "-B", "-r", "12")) == {12: value("input", 11)}
    # coils and discrete inputs, one bit per request: runs of bits read in one request are the subject of
    # test_mbpoll_reads_a_run_of_bits_from_the_simulated_slave_in_one_request
    for fc, table, addresses in (("0", "coil", (3, 4, 5)), ("1", "discrete_input", (18, 19))):
        for a in addresses:
            assert words(mbpoll(target, *line, "-t", fc, "-r", str(a + 1))) == {a + 1: int(value(table, a))}


async def start_tcp_slave(settings: ModbusTcpSlave) -> SimulatedSlave:
    slave = SimulatedSlave(settings)
    await slave.serve()
    return slave


async def stop_tcp_slave(slave: SimulatedSlave) -> None:
    await slave.shutdown()


async def start_line(settings: RtuLine) -> SimulatedLine:
    line = SimulatedLine(settings)
    await line.serve()
    return line


async def stop_line(line: SimulatedLine) -> None:
    await line.shutdown()


def test_mbpoll_reads_the_simulated_tcp_slave() -> None:
    mbpoll_path()
    port = free_port()
    settings = ModbusTcpSlave.model_validate(
        {"name": "mb", "port": port, "unit": 5, "registers": mbpoll_layout(0)}
    )
    with in_background(partial(start_tcp_slave, settings), stop_tcp_slave) as slave:
        check_with_mbpoll("127.0.0.1", settings.registers, "-m", "tcp", "-p", str(port), "-a", "5")
        assert slave.reads >= 12


def test_mbpoll_reads_a_run_of_bits_from_the_simulated_slave_in_one_request() -> None:
    """Several coils (and discrete inputs) in one request, as every master reads them."""
    mbpoll_path()
    port = free_port()
    coils, inputs = [1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1]
    settings = ModbusTcpSlave.model_validate(
        {
            "name": "bits",
            "port": port,
            "registers": [register("coil", 3 + i, "bool", v) for i, v in enumerate(coils)]
            + [register("discrete_input", 18 + i, "bool", v) for i, v in enumerate(inputs)],
        }
    )
    tcp = ("-m", "tcp", "-p", str(port), "-a", "1")
    with in_background(partial(start_tcp_slave, settings), stop_tcp_slave):
        run_of_coils = words(mbpoll("127.0.0.1", *tcp, "-t", "0", "-r", "4", "-c", str(len(coils))))
        run_of_inputs = words(mbpoll("127.0.0.1", *tcp, "-t", "1", "-r", "19", "-c", str(len(inputs))))
    assert run_of_coils == {4 + i: v for i, v in enumerate(coils)}
    assert run_of_inputs == {19 + i: v for i, v in enumerate(inputs)}


def test_mbpoll_reads_two_simulated_rtu_slaves_through_the_paced_line(tmp_path: Path) -> None:
    mbpoll_path()
    link = tmp_path / "ttyRS485"
    settings = RtuLine.model_validate(
        {
            "name": "line",
            "link": str(link),
            "baudrate": 19200,
            "bytesize": 8,
            "parity": "N",
            "stopbits": 1,
            "slaves": [
                {"unit": 3, "registers": mbpoll_layout(3)},
                {"unit": 17, "registers": mbpoll_layout(17)},
            ],
        }
    )
    serial = ("-m", "rtu", "-b", "19200", "-d", "8", "-s", "1", "-P", "none")
    with in_background(partial(start_line, settings), stop_line) as line:
        assert link.is_symlink()
        for slave in settings.slaves:
            check_with_mbpoll(str(link), slave.registers, *serial, "-a", str(slave.unit))
        assert line.models[3].reads >= 12 and line.models[17].reads >= 12
        # the paced line carried the 12 requests and answers of each slave
        assert line.line.bytes_carried >= 2 * 12 * (8 + 6)
    assert not link.exists()


# ---------------------------------------------------------------------------------------------------------
# our driver against pyModbusTCP's server, and against the bench

LAYOUT: list[Row] = [
    # (channel, table, address, datatype, byte_order, word_order, scale, offset, value)
    ("temp", "input", 0, "float32", "big", "big", 1.0, 0.0, 21.25),
    ("temp_swapped", "input", 2, "float32", "big", "little", 1.0, 0.0, -7.75),
    ("pressure", "input", 4, "int16", "big", "big", 0.1, 0.0, -12.5),
    ("energy", "holding", 10, "uint32", "big", "big", 1.0, 0.0, 3_000_000_000.0),
    ("energy_swapped", "holding", 12, "uint32", "big", "little", 1.0, 0.0, 123_456_789.0),
    ("delta", "holding", 14, "int16", "big", "big", 1.0, 0.0, -300.0),
    ("flow", "holding", 15, "float64", "little", "little", 1.0, 0.0, 0.125),
    ("level", "holding", 19, "uint16", "big", "big", 0.5, -10.0, 40.0),
    ("count", "holding", 20, "int32", "big", "big", 1.0, 0.0, -70_000.0),
    ("running", "coil", 5, "bool", "big", "big", 1.0, 0.0, 1.0),
    ("valve", "coil", 8, "bool", "big", "big", 1.0, 0.0, 0.0),
    ("door", "discrete_input", 9, "bool", "big", "big", 1.0, 0.0, 1.0),
]

_FORMATS = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def device_words(datatype: str, byte_order: str, word_order: str, raw: float) -> list[int]:
    """The registers a device holds for `raw`, built here from the Modbus rules (not the bench's encoder)."""
    fmt = _FORMATS[datatype]
    data = struct.pack(">" + fmt, raw if fmt in "fd" else round(raw))
    chunks = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        chunks.reverse()
    return [int.from_bytes(chunk, "big" if byte_order == "big" else "little") for chunk in chunks]


def fill_data_bank(bank: Any) -> None:
    for _, table, address, datatype, byte_order, word_order, scale, offset, value in LAYOUT:
        if table in ("coil", "discrete_input"):
            setter = bank.set_coils if table == "coil" else bank.set_discrete_inputs
            assert setter(address, [bool(value)]) is True
            continue
        regs = device_words(datatype, byte_order, word_order, (value - offset) / scale)
        setter = bank.set_holding_registers if table == "holding" else bank.set_input_registers
        assert setter(address, regs) is True


def device_settings(port: int) -> ModbusTcpDeviceSettings:
    return tcp_device(LAYOUT, port, max_gap=0)


def sim_settings(port: int) -> ModbusTcpSlave:
    return sim_slave(LAYOUT, port, "bench")


async def poll_values(port: int) -> dict[str, tuple[float | str | None, Quality]]:
    """Two polls of LAYOUT by our poller and TCP client; the readings of the second."""
    got: list[Sequence[Reading]] = []
    poller = ModbusPoller(
        "dev",
        device_settings(port),
        partial(ModbusTcpClient, "127.0.0.1", port, 1, 0.5),
        lambda batch, _: got.append(batch),
    )
    client = ModbusTcpClient("127.0.0.1", port, 1, 0.5)
    try:
        await poller.poll_once(client)
        readings = await poller.poll_once(client)
    finally:
        client.close()
    assert poller.failures == {}, poller.last_failure
    return {r.channel: (r.value, r.quality) for r in readings}


def wait_running(server: Any) -> None:
    deadline = time.monotonic() + 5
    while not server.is_run:
        assert time.monotonic() < deadline, "pyModbusTCP's server did not start within 5 s"
        time.sleep(0.01)


def test_our_driver_reads_pymodbustcp_and_the_bench_identically() -> None:
    server_module = pymodbustcp_server()
    bank = server_module.DataBank()
    fill_data_bank(bank)
    port = free_port()
    server = server_module.ModbusServer(host="127.0.0.1", port=port, no_block=True, data_bank=bank)
    server.start()
    try:
        wait_running(server)
        foreign = asyncio.run(poll_values(port))
    finally:
        server.stop()

    async def from_bench() -> dict[str, tuple[float | str | None, Quality]]:
        bench_port = free_port()
        slave = SimulatedSlave(sim_settings(bench_port))
        await slave.serve()
        try:
            return await poll_values(bench_port)
        finally:
            await slave.shutdown()

    ours = asyncio.run(from_bench())
    expected = {channel: (value, Quality.OK) for channel, *_, value in LAYOUT}
    assert foreign == expected
    assert ours == foreign


def test_our_driver_reads_runs_of_bits_and_a_long_block_from_pymodbustcp() -> None:
    server_module = pymodbustcp_server()
    bank = server_module.DataBank()
    coils = [bool(i % 3 == 0) for i in range(37)]  # 37 bits: five data bytes, the last one partly used
    inputs = [bool((i * 7) % 5 < 2) for i in range(21)]
    holding = [(i * 2654435761) & 0xFFFF for i in range(125)]  # the largest read Modbus allows
    assert bank.set_coils(100, coils) is True
    assert bank.set_discrete_inputs(7, inputs) is True
    assert bank.set_holding_registers(1000, holding) is True
    port = free_port()
    server = server_module.ModbusServer(host="127.0.0.1", port=port, no_block=True, data_bank=bank)

    async def body() -> list[Sequence[int] | Sequence[bool]]:
        client = ModbusTcpClient("127.0.0.1", port, 1, 0.5)
        try:
            return [
                await client.read(Block(Table.COIL, 100, len(coils), ())),
                await client.read(Block(Table.DISCRETE_INPUT, 7, len(inputs), ())),
                await client.read(Block(Table.HOLDING, 1000, len(holding), ())),
            ]
        finally:
            client.close()

    server.start()
    try:
        wait_running(server)
        got = asyncio.run(body())
    finally:
        server.stop()
    assert [list(values) for values in got] == [coils, inputs, holding]
