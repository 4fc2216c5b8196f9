"""The typed settings of appliance.toml; each backend validates its own options (`type = "..."`).

The sections live by topic (http.py, devices.py, registers.py, qc.py, camera.py, safety.py, sync.py);
this module puts them together and keeps the registry-built unions in step with their registries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from appliance.config.base import NAME_PATTERN, Settings, follow, key_literal, tagged_union
from appliance.config.camera import CAMERA_SOURCES
from appliance.config.devices import (
    DEVICE_TYPES,
    BusSettings,
    DeviceSettings,
    ModbusDeviceSettings,
    ModbusRtuDeviceSettings,
    ModbusTcpDeviceSettings,
    SerialAsciiDeviceSettings,
    SerialBinaryDeviceSettings,
)
from appliance.config.http import HostPort, HttpSettings, check_host_port, split_host_port
from appliance.config.qc import QcSettings
from appliance.config.registers import FeatureSettings, RegisterSettings
from appliance.config.safety import SafetySettings, StopLineSettings
from appliance.config.sync import TRANSPORTS, ClassSettings, SyncSettings
from hal.gpio.factory import GPIO_BACKENDS

# Names that lived here before the sections were split by topic; importers of this module still find them.
__all__ = [
    "NAME_PATTERN",
    "ApplianceConfig",
    "FeatureSettings",
    "HostPort",
    "HttpSettings",
    "ModbusDeviceSettings",
    "ModbusRtuDeviceSettings",
    "ModbusTcpDeviceSettings",
    "RegisterSettings",
    "SerialAsciiDeviceSettings",
    "SerialBinaryDeviceSettings",
    "Settings",
    "StoreSettings",
    "check_host_port",
    "split_host_port",
]

DeviceName = Annotated[str, Field(pattern=NAME_PATTERN)]


class DeviceIdentity(Settings):
    """Who this box is; on a device the image's first boot provisions it."""

    id: Annotated[str, Field(pattern=NAME_PATTERN)] = "appliance"
    name: str = ""


class HalSettings(Settings):
    """Hardware detection."""

    root: Annotated[str, Field(min_length=1)] = "/"  # read /proc, /sys, /dev, /etc under here


class StoreSettings(Settings):
    """The local SQLite store under the data directory."""

    path: Annotated[str, Field(min_length=1)] = "appliance.db"
    # How long records gather before one commit to the journal, which a killed process leaves behind.
    commit_interval_ms: Annotated[int, Field(ge=1, le=60_000)] = 200
    # How often the journal's records go into the database (critical ones go at once); default 100 commit
    # intervals, 20 s at 200 ms. Fewer flushes, fewer writes to the SD card (docs/sync.md).
    flush_interval_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    batch_max: Annotated[int, Field(ge=1, le=100_000)] = 2000
    # The database's share of the disk; past it the oldest records go, lowest class first (docs/sync.md).
    quota_mb: Annotated[float, Field(gt=0, le=10_000_000)] = 1024.0
    # A new database file's page size in bytes (an existing file keeps its own), and the WAL size in KiB
    # that makes a checkpoint: small pages and rare checkpoints for flash.
    page_size: Literal[512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] = 1024
    checkpoint_kb: Annotated[int, Field(ge=64, le=1_048_576)] = 4096
    # Where the journal and the batches waiting for the upstream are kept: a RAM file system spares the SD
    # card; "" keeps them beside the database (relative paths start at the data directory). Unset: the
    # systemd unit's RuntimeDirectory ($RUNTIME_DIRECTORY) if it has one, else /dev/shm.
    journal_dir: str | None = None
    classes: ClassSettings = ClassSettings()

    @property
    def flush_s(self) -> float:
        return self.flush_interval_s or self.commit_interval_ms / 10

    @property
    def journal_folder(self) -> str:
        """journal_dir, or where it goes when unset: /dev/shm does not outlive a crash of a unit with
        RemoveIPC= or PrivateDevices=, a RuntimeDirectory with RuntimeDirectoryPreserve= does."""
        if self.journal_dir is not None:
            return self.journal_dir
        return os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or "/dev/shm"


class RuntimeSettings(Settings):
    """How `appliance run` itself behaves (docs/running.md)."""

    # The whole stop, every service within it; the systemd unit's TimeoutStopSec leaves a margin above.
    stop_budget_s: Annotated[float, Field(ge=0.5, le=60)] = 2.0


class ApplianceConfig(Settings):
    """The whole appliance.toml."""

    device: DeviceIdentity = DeviceIdentity()
    hal: HalSettings = HalSettings()
    http: HttpSettings = HttpSettings()
    store: StoreSettings = StoreSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    buses: dict[DeviceName, BusSettings] = {}
    devices: dict[DeviceName, DeviceSettings] = {}
    # Owned and validated by the bench (`bench sim --config`): when present, `appliance run`
    # starts that simulated world beside the runtime.
    qc: QcSettings | None = None
    safety: SafetySettings | None = None
    sync: SyncSettings | None = None
    bench: dict[str, Any] | None = None

    def cross_check(self, folder: Path | None = None) -> list[tuple[str, str]]:
        """Mistakes between sections and against the disk, as (key path, problem); `folder` is where the
        config file is, which relative paths start from."""
        problems = []
        if self.qc is not None and folder is not None and not (folder / self.qc.model).is_file():
            problems.append(("qc.model", f"no such file: {folder / self.qc.model}"))
        for name, device in self.devices.items():
            if isinstance(device, ModbusRtuDeviceSettings) and device.bus not in self.buses:
                known = ", ".join(self.buses) or "none"
                problems.append((f"devices.{name}.bus", f"no bus {device.bus!r} in [buses] (known: {known})"))
        if self.safety is not None:
            for i, rule in enumerate(self.safety.rules):
                if rule.sensor == "qc.camera" and self.qc is None:
                    problems.append((f"safety.rules.{i}.sensor", "qc.camera, but there is no [qc] section"))
                elif rule.sensor != "qc.camera" and self.sensor_device(rule.sensor) is None:
                    known = ", ".join(self.devices) or "none"
                    problem = f"{rule.sensor!r} is on no device in [devices] ({known})"
                    problems.append((f"safety.rules.{i}.sensor", problem))
        return problems

    def sensor_device(self, sensor: str) -> tuple[str, str] | None:
        """(device, channel) of a DEVICE.CHANNEL sensor id, the longest matching device id first."""
        for device in sorted(self.devices, key=len, reverse=True):
            if sensor.startswith(device + ".") and len(sensor) > len(device) + 1:
                return device, sensor[len(device) + 1 :]
        return None


# A plugin that registers a device type, camera source, transport or GPIO backend after this module was
# imported is validated like the built-in ones: each change to a registry rebuilds the models that use it.
def _device_table() -> Any:
    return dict[DeviceName, tagged_union(DEVICE_TYPES)]  # type: ignore[misc]  # a type made at run time


follow(DEVICE_TYPES, ApplianceConfig, "devices", _device_table)
follow(CAMERA_SOURCES, QcSettings, "camera", lambda: tagged_union(CAMERA_SOURCES), (ApplianceConfig,))
follow(TRANSPORTS, SyncSettings, "upstream", lambda: tagged_union(TRANSPORTS), (ApplianceConfig,))
follow(
    GPIO_BACKENDS,
    StopLineSettings,
    "gpio",
    lambda: key_literal(GPIO_BACKENDS, "auto"),
    (SafetySettings, ApplianceConfig),
)
