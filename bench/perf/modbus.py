"""The `modbus` section of `bench perf`:

- tcp_regs_over_bare: registers/s of our poller (plan, read, decode, readings) over a bare pymodbus
  loop that reads the same blocks from the same simulated server, the two taking turns cycle by cycle;
- requests_over_optimal: requests per cycle the auto planner settles on, over the fewest reads that can
  cover the map (the greedy cover with unlimited bridging, which is optimal for points on a line);
- rtu_cycle_over_floor: time of one poll of three slaves on a 19200-baud paced line, over the wire-time
  floor: for each request, its frame, 3.5 characters of silence, the answer, and silence again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from appliance.config.models import ModbusRtuDeviceSettings, ModbusTcpDeviceSettings
from appliance.field.poller import ModbusPoller
from bench.harness.sim import sim_world
from drivers.modbus.planner import MAX_REGISTERS_PER_READ, plan_reads
from drivers.modbus.rtu import ModbusRtuClient, RtuBus, RtuBusSettings
from drivers.modbus.rtu_frames import request_frame, response_length
from drivers.modbus.tcp import ModbusTcpClient

# A drive/PLC-like map: contiguous measurement blocks, status words, sparse setpoints, holes between.
log = logging.getLogger(__name__)

MAP: list[tuple[str, int, str]] = (
    [("input", 2 * i, "float32") for i in range(24)]
    + [("input", 100 + i, "uint16") for i in range(10)]
    + [("input", 200 + 2 * i, "int16") for i in range(16)]
    + [("holding", 1000 + 2 * i, "float32") for i in range(10)]
    + [("holding", 1100 + 8 * i, "uint32") for i in range(4)]
    + [("holding", 1500 + 5 * i, "int16") for i in range(25)]
)


def _sim_registers(table_prefix: str, points: list[tuple[str, int, str]]) -> str:
    return "".join(
        f'[[{table_prefix}.registers]]\ntable = "{t}"\naddress = {a}\ndatatype = "{d}"\n'
        f'signal = {{ type = "sine", mean = 100.0, amplitude = 10.0, period_s = 5.0 }}\n'
        for t, a, d in points
    )


def _device_registers(points: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    return [{"channel": f"{t}_{a}", "table": t, "address": a, "datatype": d} for t, a, d in points]


async def _interleaved(poller: ModbusPoller, port: int, seconds: float) -> tuple[float, float]:
    """Registers/s of our poller and of a bare pymodbus loop reading the same blocks, cycle by cycle in
    turn, so both meet the same machine at millisecond granularity (a shared VM's noise hits both)."""
    bare = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    await bare.connect()
    ours = ModbusTcpClient("127.0.0.1", port, 1, 2.0)
    readers = {"input": bare.read_input_registers, "holding": bare.read_holding_registers}
    blocks = [(readers[str(b.table)], b.address, b.count) for b in poller.blocks]
    per_cycle = sum(count for _, _, count in blocks)
    bare_s = ours_s = 0.0
    cycles = 0
    clock = time.perf_counter
    try:
        end = clock() + seconds
        while clock() < end:
            t0 = clock()
            for read, address, count in blocks:
                response = await read(address, count=count, device_id=1)
                if len(response.registers) != count:
                    raise RuntimeError("bare loop: short answer")
            t1 = clock()
            readings = await poller.poll_once(ours)  # what the poller hands on: one reading per point
            if len(readings) != len(MAP):
                raise RuntimeError(f"poller: {len(readings)} readings for {len(MAP)} points")
            t2 = clock()
            bare_s, ours_s, cycles = bare_s + t1 - t0, ours_s + t2 - t1, cycles + 1
    finally:
        bare.close()
        ours.close()
    return per_cycle * cycles / ours_s, per_cycle * cycles / bare_s


async def tcp_figures(port: int, quick: bool) -> dict[str, Any]:
    settings = ModbusTcpDeviceSettings.model_validate(
        {
            "type": "modbus_tcp",
            "host": "127.0.0.1",
            "port": port,
            "max_gap": "auto",
            "registers": _device_registers(MAP),
        }
    )
    poller = ModbusPoller(
        "perf", settings, partial(ModbusTcpClient, "127.0.0.1", port, 1, 2.0), lambda *_: None
    )
    client = ModbusTcpClient("127.0.0.1", port, 1, 2.0)
    for _ in range(6):  # let the auto planner measure and settle
        for _ in range(20):
            await poller.poll_once(client)
        poller.retune()
    client.close()
    optimal = len(plan_reads(settings.register_map(), MAX_REGISTERS_PER_READ - 1))
    ours_rate, bare_rate = await _interleaved(poller, port, 2.0 if quick else 12.0)
    return {
        "tcp_regs_over_bare": round(ours_rate / bare_rate, 3),
        "requests_over_optimal": round(len(poller.blocks) / optimal, 3),
        "figures": {
            "tcp_regs_over_bare": {
                "measured": round(ours_rate),
                "baseline": round(bare_rate),
                "unit": "registers/s",
                "points": len(MAP),
            },
            "requests_over_optimal": {
                "measured": len(poller.blocks),
                "baseline": optimal,
                "unit": "requests/cycle",
                "max_gap": poller.max_gap,
            },
        },
    }


async def rtu_figures(link: str, quick: bool) -> dict[str, Any]:
    line = RtuBusSettings(link)  # 19200 8N1
    bus = RtuBus(line)
    bus.start()
    points = MAP[:24] + MAP[34:40]  # a meter's worth per slave: 24 floats and 6 words
    pollers = []
    for unit in (1, 2, 3):
        settings = ModbusRtuDeviceSettings.model_validate(
            {
                "type": "modbus_rtu",
                "bus": "perf",
                "unit": unit,
                "poll_interval_s": 0.01,
                "turnaround_s": 0.05,
                "max_gap": 0,
                "registers": _device_registers(points),
            }
        )
        pollers.append(
            ModbusPoller(f"rtu{unit}", settings, partial(ModbusRtuClient, bus, unit, 0.05), lambda *_: None)
        )
    frames = [
        (request_frame(p.settings.unit, b), response_length(b))  # type: ignore[attr-defined]
        for p in pollers
        for b in p.blocks
    ]
    floor = sum(line.wire_time_s(len(req) + resp) + 2 * line.silence_s for req, resp in frames)
    try:
        for poller in pollers:
            await poller.start()
        await asyncio.sleep(1.0)  # warm up: ports open, queues in step
        before, began = bus.counts["transactions"], time.perf_counter()
        await asyncio.sleep(3.0 if quick else 10.0)
        done, took = bus.counts["transactions"] - before, time.perf_counter() - began
    finally:
        for poller in pollers:
            await poller.stop()
        bus.stop()
    failures = sum(sum(p.failures.values()) for p in pollers)
    cycle = took / (done / len(frames))
    return {
        "rtu_cycle_over_floor": round(cycle / floor, 3),
        "figures": {
            "rtu_cycle_over_floor": {
                "measured": round(cycle * 1000, 2),
                "baseline": round(floor * 1000, 2),
                "unit": "ms/cycle",
                "requests_per_cycle": len(frames),
                "baud": 19200,
                "failures": failures,
            }
        },
    }


def _tcp_world(port: int) -> str:
    return f'[[bench.modbus_tcp]]\nname = "perf"\nport = {port}\nholes = "zero"\n' + _sim_registers(
        "bench.modbus_tcp", MAP
    )


def _rtu_world() -> str:
    points = MAP[:24] + MAP[34:40]
    text = '[[bench.rtu_lines]]\nname = "perf"\nlink = "{dir}/ttyPERF"\nbaudrate = 19200\n'
    for unit in (1, 2, 3):
        text += f'[[bench.rtu_lines.slaves]]\nunit = {unit}\nholes = "zero"\n' + _sim_registers(
            "bench.rtu_lines.slaves", points
        )
    return text


def run(quick: bool, port: int) -> dict[str, Any]:
    with sim_world(_tcp_world(port)):
        section = asyncio.run(tcp_figures(port, quick))
    with sim_world(_rtu_world()) as folder:
        rtu = asyncio.run(rtu_figures(str(folder / "ttyPERF"), quick))
    section["rtu_cycle_over_floor"] = rtu["rtu_cycle_over_floor"]
    section["figures"].update(rtu["figures"])
    return section
