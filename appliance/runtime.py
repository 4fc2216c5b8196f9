"""The runtime: builds every service from the config, starts them in order and stops them within a budget
(appliance/lifecycle.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from appliance.config.http import split_host_port
from appliance.config.models import ApplianceConfig
from appliance.field.fieldbus import build_field
from appliance.field.snapshot import SensorSnapshot
from appliance.lifecycle import ServiceSet, StopReport, start_unless
from appliance.ops.clock import ClockWatch
from appliance.ops.health import HealthWatch
from appliance.ops.loop_lag import LoopMonitor
from appliance.qc.pipeline import QcPipeline
from appliance.records import Event, Reading
from appliance.safety.link import SafetyLink
from appliance.safety.rules import SafetyRules
from appliance.service import Service
from appliance.status.document import DiskStatus, RuntimeInfo, Status
from appliance.status.hal import hal_section
from appliance.status.qc import QcStatus
from appliance.status.safety import EstopStatus
from appliance.status.sync import SyncDisabled, SyncStatus
from appliance.store import Store
from appliance.update.upload import UpdateArea
from appliance.web import WebServer
from appliance.web.access import Access
from appliance.web.auth import AdminCredential
from appliance.web.certificate import page_certificate
from appliance.web.first_credential import FirstFile, hand_over
from appliance.world import BenchWorld
from hal.plan import InferencePlan
from hal.report import HardwareReport, detect
from hal.watchdog import SystemdWatchdog

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("edge-appliance")
    except PackageNotFoundError:
        return "unknown"


VERSION = _version()


class Runtime:
    """The whole appliance process."""

    def __init__(
        self, config: ApplianceConfig, config_path: Path, data_dir: Path, listen: str | None = None
    ) -> None:
        self.config = config
        self.started = time.monotonic()
        self.snapshot = SensorSnapshot()
        self.store = Store(config.store, data_dir)
        self.data_dir = data_dir
        self.credential: AdminCredential | None = None  # loaded once the store started, before the page
        self.credential_line: str | None = None  # what to print about a credential made on this start
        host, port = split_host_port(listen or config.http.listen)
        evidence = data_dir / (config.qc.evidence.dir if config.qc else "evidence")
        self.config_path = config_path
        self.fingerprint: str | None = None  # of the HTTPS certificate, once there is one
        access = Access(
            lambda: self.credential,
            config.http.status_login,
            secure_cookies=config.http.tls != "off",
            session_hours=config.http.session_hours,
            on_login=FirstFile(data_dir).used,
        )
        self.web = WebServer(
            host,
            port,
            self.status,
            self.store,
            evidence,
            self if config.safety is not None else None,
            access,
            self.snapshot.history,
            version=VERSION,
            update=UpdateArea.from_environment(data_dir),  # uploads for root's updater (docs/updates.md)
            trusted_proxies=config.http.trusted_proxies,
            hosts=config.http.hosts,
        )
        self.loop_monitor = LoopMonitor()
        self.health = HealthWatch(self.status)
        self.clock = ClockWatch(self.publish_events)  # a step of the wall clock becomes an event
        world = [BenchWorld(config_path)] if config.bench is not None else []
        field = build_field(config, self.publish)
        self.rules: SafetyRules | None = None
        self.safety: SafetyLink | None = None
        if config.safety is not None:
            self.rules = SafetyRules(
                config.safety.rules, config.sensor_device, self.trip, self.publish_events, self._last_frame
            )
            self.safety = SafetyLink(
                config.safety, config_path, data_dir, self.rules.causes, self.publish_events, self._recorded
            )
        self.sync: Service | None = None
        if config.sync is not None:  # paho and zstandard are loaded only by a box that syncs
            from appliance.sync.service import SyncService

            self.sync = SyncService(config.sync, self.store, config.device.id, config_path.parent, evidence)
        qc_alarm = self.trip if config.safety is not None and config.safety.trip_on_qc else None
        self.qc = (
            QcPipeline(
                config.qc, config_path.parent, data_dir, self._plan, self.publish_events, alarm=qc_alarm
            )
            if config.qc is not None
            else None
        )
        # Start order: the page first, so the status answers while the rest start (unless its certificate
        # is made in the data directory: then after the store, since nothing is written before the
        # simulated world has accepted its config); the world before anything polls it, the store before
        # anything writes, the safety link before any rule can fire, a line's master before its slaves.
        self.early_web = config.http.tls != "self-signed"
        early, late = ([self.web], []) if self.early_web else ([], [self.web])
        qc = [self.qc] if self.qc is not None else []
        safety = [self.safety] if self.safety is not None else []
        sync = [self.sync] if self.sync is not None else []
        self.services: list[Service] = [
            self.loop_monitor,
            self.clock,
            *early,
            *world,
            self.store,
            *late,
            self.health,
            *sync,
            *safety,
            *field,
            *qc,
        ]
        # Stopped all at once, then the world (once nothing polls it), then the store (once nothing writes).
        self.lifecycle = ServiceSet(self.services, stop_after=[*world, self.store])
        self.stop_budget_s = config.runtime.stop_budget_s
        self.hardware: HardwareReport | None = None

    def publish(self, readings: Sequence[Reading], received_ns: int) -> None:
        """Readings that entered the box at `received_ns` (CLOCK_MONOTONIC; the poll's answer, the line)."""
        if self.rules is not None:
            self.rules.readings(readings, received_ns)
        self.snapshot.update(readings)
        self.store.write(readings)

    def trip(self, reason: str, cause_ns: int | None = None) -> None:
        """A critical cause: the supervisor is asked to drop the stop output now (any thread)."""
        if self.safety is not None:
            self.safety.trip(reason, cause_ns)

    def _last_frame(self) -> float | None:
        """Monotonic time of the QC camera's last frame."""
        if self.qc is None or not self.qc.frame_times:
            return None
        return self.qc.frame_times[-1]

    def _recorded(self) -> set[str]:
        """Ids of the trips and resets already in the store (the supervisor may report them again)."""
        return {str(e["data"].get("id")) for e in self.store.recent_events("estop.", 200)}

    def publish_events(self, events: Sequence[Event]) -> None:
        self.store.write(events)

    def _plan(self) -> InferencePlan:
        assert self.hardware is not None, "hardware is detected before any service starts"
        return self.hardware.plan

    def status(self) -> Status:
        services = {s.name: s.status() for s in self.services}
        qc, sync = services.get("qc"), services.get("sync")
        return Status(
            device=self.config.device.id,
            time=time.time(),
            uptime_s=round(time.monotonic() - self.started, 3),
            sensors=self.snapshot.sensors(),
            services=services,
            hal=hal_section(self.hardware) if self.hardware else None,
            qc=qc if isinstance(qc, QcStatus) and qc.running else None,
            estop=self._estop(),
            sync=sync if isinstance(sync, SyncStatus) else SyncDisabled(),
            disk=self._disk(),
            insights=self.health.current,
            runtime=RuntimeInfo(
                version=VERSION, pid=os.getpid(), loop_lag_ms=round(self.loop_monitor.lag_ms, 3)
            ),
        )

    async def manual_trip(self, who: str, reason: str) -> EstopStatus | None:
        assert self.safety is not None
        await self.safety.manual_trip(who, reason)
        return self._estop()

    async def manual_reset(self, who: str) -> tuple[bool, str, EstopStatus | None]:
        assert self.safety is not None
        accepted, message = await self.safety.manual_reset(who)
        return accepted, message, self._estop()

    def _disk(self) -> DiskStatus | None:
        """The data directory's file system: what the store, evidence and logs share."""
        try:
            usage = shutil.disk_usage(self.data_dir)
        except OSError:
            return None
        return DiskStatus(
            path=str(self.data_dir),
            total_mb=round(usage.total / 1e6, 1),
            free_mb=round(usage.free / 1e6, 1),
        )

    def _estop(self) -> EstopStatus | None:
        if self.safety is None or self.rules is None:
            return None
        return self.safety.estop(self.rules.status())

    async def start(self) -> None:
        self.hardware = await asyncio.to_thread(detect, self.config.hal.root)
        log.info(
            "hardware: %s, %s; inference on %s",
            self.hardware.board.model,
            self.hardware.cpu.model,
            self.hardware.plan.backends[0].kind,
        )
        if self.early_web:
            self.web.tls = await asyncio.to_thread(self._https)  # none, or the configured files: reads only
        await self.lifecycle.start(until=self.store)  # the data directory exists from here on
        if not self.early_web:
            self.web.tls = await asyncio.to_thread(self._https)
        credential, made = await asyncio.to_thread(AdminCredential.load_or_create, self.data_dir)
        if made is not None:  # never to the journal: on a terminal only, else to a file (first_credential.py)
            terminal = sys.stdout is not None and sys.stdout.isatty()
            self.credential_line = await asyncio.to_thread(hand_over, self.data_dir, made, terminal)
        self.credential = credential  # until here a login is answered 503 ("no admin credential yet")
        await self.lifecycle.start()

    def _https(self) -> tuple[Path, Path] | None:
        """The status page's certificate and key, if it serves HTTPS."""
        found = page_certificate(
            self.config.http, self.web.host, self.config.device.id, self.config_path.parent, self.data_dir
        )
        if found is None:
            return None
        cert, key, self.fingerprint = found
        return cert, key

    async def stop(self) -> StopReport:
        """Stop every service started within the stop budget: all at once, then the world, then the store."""
        report = await self.lifecycle.stop(self.stop_budget_s)
        log.log(
            logging.INFO if report.clean else logging.ERROR,
            "%s; %d readings committed (slowest: %s)",
            report.outcome,
            self.store.rows_committed,
            report.slowest,
        )
        return report

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, announce the status page, run until `stop` is set, then stop everything. A stop asked
        for while starting ends the start where it is."""
        systemd = SystemdWatchdog() if os.environ.get("NOTIFY_SOCKET") else None
        try:
            if await start_unless(self.start(), stop):
                self._announce(systemd)
                await stop.wait()
            log.info("stopping")
        finally:
            if systemd is not None:
                systemd.stopping()
                systemd.close()
            await self.stop()

    def _announce(self, systemd: SystemdWatchdog | None) -> None:
        if systemd is not None:  # Type=notify: started; WatchdogSec restarts a runtime whose loop hangs
            systemd.ready()
            self.loop_monitor.pet = systemd.pet
        print(f"status page: {self.web.url}", flush=True)
        if self.fingerprint is not None:
            print(f"status page certificate SHA-256: {self.fingerprint}", flush=True)
        if self.credential_line is not None:
            print(self.credential_line, flush=True)
