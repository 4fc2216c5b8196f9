"""Runs the simulated world until SIGINT or SIGTERM, announcing each part once it is listening."""

from __future__ import annotations

import asyncio
import logging
import signal

from bench.config import BenchConfig
from bench.modbus_slave import start_slaves

log = logging.getLogger(__name__)

READY = "bench sim ready"


async def run_world(config: BenchConfig) -> None:
    """Start every simulated part, print one line per part and then READY, serve until signalled."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    slaves = await start_slaves(config.modbus_tcp)
    try:
        for slave in slaves:
            host, port = slave.address
            print(
                f"modbus_tcp {slave.settings.name} listening on {host}:{port} unit {slave.settings.unit}",
                flush=True,
            )
        print(READY, flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(s.shutdown() for s in slaves))
        log.info("bench sim stopped")
