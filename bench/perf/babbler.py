"""For the `security` section of `bench perf`: healthy_poll_rate_with_babbler, the good polls/s of three
healthy slaves on a paced 19200-baud line while a fourth slave on the same line babbles (random bytes,
unasked, 30% of the line's time, never 3.5 characters of silence between them), over their good polls/s
with the babbler quiet. The two alternate in phases of the same run, on the same line, bus and pollers, so
drift and a shared machine's noise hit both alike. The babbler is polled too, as a device gone bad would be.

The line, the slaves' registers and the bus are set up as for rtu_cycle_over_floor (bench/perf/modbus.py);
each slave serves four registers, polled every 0.2 s, so the line has room to spare without the babbler and
a master that copes loses nothing to it."""

from __future__ import annotations

import asyncio
import collections
import time
from functools import partial
from typing import Any

from appliance.config.models import ModbusRtuDeviceSettings
from appliance.field.poller import ModbusPoller
from appliance.records import Quality, Reading
from bench.harness.http_json import post_json
from bench.harness.ports import free_port
from bench.harness.sim import sim_world
from bench.perf.modbus import MAP, _device_registers, _sim_registers
from drivers.modbus.rtu import ModbusRtuClient, RtuBus, RtuBusSettings

HEALTHY = (1, 2, 3)
BABBLER = 4
BABBLE = 0.3  # share of the line's time; above 1/4.5 the line is never quiet for 3.5 characters
POINTS = MAP[:2]  # two float32 inputs: one read of four registers per poll
POLL_INTERVAL_S = 0.2
GOAL = 0.90


def _world(control: int) -> str:
    text = f'[bench]\ncontrol = "127.0.0.1:{control}"\n'
    text += '[[bench.rtu_lines]]\nname = "perf"\nlink = "{dir}/ttyBABBLE"\nbaudrate = 19200\n'
    for unit in (*HEALTHY, BABBLER):
        text += f"[[bench.rtu_lines.slaves]]\nunit = {unit}\n" + _sim_registers(
            "bench.rtu_lines.slaves", POINTS
        )
    return text


async def _measure(link: str, control: int, quick: bool) -> dict[str, Any]:
    bus = RtuBus(RtuBusSettings(link))  # 19200 8N1
    bus.start()
    good: collections.Counter[int] = collections.Counter()

    def sink(unit: int, readings: Any, _: int) -> None:
        if readings and all(isinstance(r, Reading) and r.quality is Quality.OK for r in readings):
            good[unit] += 1

    pollers = []
    for unit in (*HEALTHY, BABBLER):
        settings = ModbusRtuDeviceSettings.model_validate(
            {
                "type": "modbus_rtu",
                "bus": "perf",
                "unit": unit,
                "poll_interval_s": POLL_INTERVAL_S,
                "turnaround_s": 0.05,
                "max_gap": 0,
                "registers": _device_registers(POINTS),
            }
        )
        client = partial(ModbusRtuClient, bus, unit, 0.05)
        pollers.append(ModbusPoller(f"rtu{unit}", settings, client, partial(sink, unit)))
    faults = f"http://127.0.0.1:{control}/faults"

    def healthy_polls() -> int:
        return sum(good[u] for u in HEALTHY)

    async def babble(share: float) -> None:
        await asyncio.to_thread(post_json, faults, {"target": f"perf/{BABBLER}", "babble": share})

    phase_s = 2.5 if quick else 10.0
    spent = {False: 0.0, True: 0.0}
    polls = {False: 0, True: 0}
    garbage = 0
    try:
        for poller in pollers:
            await poller.start()
        await asyncio.sleep(1.0)  # warm up: the port open, the pollers in step
        for babbling in (False, True, False, True):
            await asyncio.to_thread(
                post_json, faults, {"target": f"perf/{BABBLER}", "babble": BABBLE * babbling}
            )
            await asyncio.sleep(0.3)  # the babble reaches the line (or leaves it) before the phase counts
            before, garbage_before, began = (
                sum(good[u] for u in HEALTHY),
                bus.counts["garbage_bytes"],
                time.perf_counter(),
            )
            await asyncio.sleep(phase_s)
            polls[babbling] += sum(good[u] for u in HEALTHY) - before
            spent[babbling] += time.perf_counter() - began
            if babbling:
                garbage += bus.counts["garbage_bytes"] - garbage_before
    finally:
        await babble(0.0)
        for poller in pollers:
            await poller.stop()
        bus.stop()
    quiet, babbled = polls[False] / spent[False], polls[True] / spent[True]
    failures = {p.name: dict(p.failures) for p in pollers if p.failures}
    return {
        "healthy_poll_rate_with_babbler": round(babbled / quiet, 3) if quiet else 0.0,
        "figures": {
            "healthy_poll_rate_with_babbler": {
                "measured": round(babbled, 2),
                "baseline": round(quiet, 2),
                "unit": "good polls/s of the healthy slaves",
                "goal": GOAL,
                "babble": BABBLE,
                "baud": 19200,
                "garbage_bytes": garbage,
                "babbler_good_polls": good[BABBLER],
                "failures": failures,
                "resync_cutoffs": bus.counts.get("resync_cutoffs", 0),
            }
        },
    }


def healthy_poll_rate_with_babbler(quick: bool) -> dict[str, Any]:
    """The healthy slaves' good poll rate with a babbler on their line over their rate without it."""
    control = free_port()
    with sim_world(_world(control)) as folder:
        return asyncio.run(_measure(str(folder / "ttyBABBLE"), control, quick))
