"""The runtime: builds every service from the config, starts them in order, stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from appliance.config.models import ApplianceConfig, split_host_port
from appliance.fieldbus import build_field
from appliance.loop_lag import LoopMonitor
from appliance.qc.pipeline import QcPipeline
from appliance.records import Event, Reading
from appliance.service import Service
from appliance.snapshot import SensorSnapshot
from appliance.store import Store
from appliance.web import WebServer
from appliance.world import BenchWorld
from hal.plan import InferencePlan
from hal.report import HardwareReport, detect

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("edge-appliance")
    except PackageNotFoundError:
        return "unknown"


VERSION = _version()


def hal_status(report: HardwareReport) -> dict[str, Any]:
    """The status API's `hal` section: board, accelerators and inference plan first, then the rest."""
    full = report.to_dict()
    return {
        "board": full["board"],
        "accelerators": full["accelerators"],
        "inference": full["inference"],
        "cpu": full["cpu"],
        "memory_mb": full["memory_mb"],
        "storage": full["storage"],
    }


class Runtime:
    """The whole appliance process."""

    def __init__(
        self, config: ApplianceConfig, config_path: Path, data_dir: Path, listen: str | None = None
    ) -> None:
        self.config = config
        self.started = time.monotonic()
        self.snapshot = SensorSnapshot()
        self.store = Store(config.store, data_dir)
        host, port = split_host_port(listen or config.http.listen)
        self.web = WebServer(
            host,
            port,
            self.status,
            self.store,
            data_dir / (config.qc.evidence.dir if config.qc else "evidence"),
        )
        self.loop_monitor = LoopMonitor()
        world = [BenchWorld(config_path)] if config.bench is not None else []
        field = build_field(config, self.publish)
        self.qc = (
            QcPipeline(config.qc, config_path.parent, data_dir, self._plan, self.publish_events)
            if config.qc is not None
            else None
        )
        # Start order: the simulated world before anything polls it, the store before anything writes,
        # a line's master before the pollers of its slaves.
        qc = [self.qc] if self.qc is not None else []
        self.services: list[Service] = [*world, self.loop_monitor, self.store, *field, *qc, self.web]
        self._started: list[Service] = []
        self.hardware: HardwareReport | None = None

    def publish(self, readings: Sequence[Reading]) -> None:
        self.snapshot.update(readings)
        self.store.write(readings)

    def publish_events(self, events: Sequence[Event]) -> None:
        self.store.write(events)

    def _plan(self) -> InferencePlan:
        assert self.hardware is not None, "hardware is detected before any service starts"
        return self.hardware.plan

    def status(self) -> dict[str, Any]:
        return {
            "device": self.config.device.id,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "sensors": self.snapshot.sensors(),
            "services": {s.name: s.status() for s in self.services},
            "hal": hal_status(self.hardware) if self.hardware else None,
            "qc": self.qc.details() if self.qc is not None and self.qc.running else None,
            "runtime": {
                "version": VERSION,
                "pid": os.getpid(),
                "loop_lag_ms": round(self.loop_monitor.lag_ms, 3),
            },
        }

    async def start(self) -> None:
        self.hardware = await asyncio.to_thread(detect, self.config.hal.root)
        log.info(
            "hardware: %s, %s; inference on %s",
            self.hardware.board.model,
            self.hardware.cpu.model,
            self.hardware.plan.backends[0].kind,
        )
        for service in self.services:
            try:
                await service.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(service)

    async def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                await service.stop()
            except Exception:
                log.exception("%s did not stop cleanly", service.name)

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, announce the status page, run until `stop` is set, then stop everything."""
        await self.start()
        try:
            print(f"status page: {self.web.url}", flush=True)
            await stop.wait()
            log.info("stopping")
        finally:
            await self.stop()
        log.info("stopped; %d readings committed", self.store.rows_committed)
