"""Runs the simulated world until SIGINT or SIGTERM, announcing each part once it is listening."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from bench.camera.conveyor import ConveyorSettings
from bench.camera.mjpeg import CameraSettings, SimulatedCamera
from bench.config import BenchConfig
from bench.control import ControlServer, FaultBoard
from bench.modbus_slave import start_slaves
from bench.rtu_line import SimulatedLine
from bench.serial_sensor import SensorSettings, SimulatedSerialSensor, Wire
from bench.upstream.world import SimulatedUpstream

log = logging.getLogger(__name__)

READY = "bench sim ready"


async def run_world(config: BenchConfig) -> None:
    """Start every simulated part, print one line per part and then READY, serve until signalled."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    slaves = await start_slaves(config.modbus_tcp)
    lines = [SimulatedLine(s) for s in config.rtu_lines]
    sensors = {
        s.name: SimulatedSerialSensor(
            SensorSettings(Wire(s.wire), s.rate_hz, s.seed, Path(s.link).parent, Path(s.link).name)
        )
        for s in config.serial_sensors
    }
    cameras = {
        c.name: SimulatedCamera(
            CameraSettings(
                c.host,
                c.port,
                c.fps,
                triggered=c.triggered,
                conveyor=ConveyorSettings(
                    (c.width, c.height),
                    c.frames_per_part,
                    defect_rate=c.defect_rate,
                    weights=tuple(c.weights.items()),
                    seed=c.seed,
                ),
            )
        )
        for c in config.cameras
    }
    control: ControlServer | None = None
    upstream = SimulatedUpstream(config.upstream) if config.upstream is not None else None
    tasks: list[asyncio.Task[None]] = []
    try:
        if upstream is not None:
            for announcement in await asyncio.to_thread(upstream.start):
                print(announcement, flush=True)
        for line in lines:
            await line.serve()
        for name, camera in cameras.items():
            await camera.start()
            print(f"camera {name} at {camera.url}/stream.mjpg", flush=True)
        for name, sensor in sensors.items():
            Path(sensor.path).parent.mkdir(parents=True, exist_ok=True)
            sensor.start()
            print(f"serial {name} at {sensor.path} {sensor.settings.wire}", flush=True)
        for slave in slaves:
            host, port = slave.address
            print(
                f"modbus_tcp {slave.settings.name} listening on {host}:{port} unit {slave.settings.unit}",
                flush=True,
            )
        for line in lines:
            s = line.settings
            units = ",".join(str(u) for u in line.models)
            frame = f"{s.baudrate} {s.bytesize}{s.parity}{s.stopbits}"
            print(f"modbus_rtu {s.name} at {s.link} {frame} units {units}", flush=True)
        if config.control:
            control_host, _, control_port = config.control.rpartition(":")
            control = ControlServer(
                FaultBoard(slaves, lines, sensors, cameras), control_host, int(control_port)
            )
            tasks.append(asyncio.create_task(control.serve()))
            print(f"control http://{control.address[0]}:{control.address[1]}/faults", flush=True)
        print(READY, flush=True)
        await stop.wait()
    finally:  # every part at once: stopping is mostly waiting (threads, a broker, connections)
        if control is not None:
            control.stop()
        await asyncio.gather(
            *tasks,
            *(s.shutdown() for s in slaves),
            *(line.shutdown() for line in lines),
            *(asyncio.to_thread(sensor.stop) for sensor in sensors.values()),
            *([asyncio.to_thread(upstream.stop)] if upstream is not None else []),
            *(c.stop() for c in cameras.values()),
            return_exceptions=True,
        )
        log.info("bench sim stopped")
