"""Builds the field side of the runtime from the config: one bus service per RTU line, one poller per
Modbus device (a TCP connection of its own, or its line's shared master), one service per serial sensor.

Devices are built by the builder their `type` registered in `DEVICE_TYPES` (appliance/config/devices.py);
the built-in builders are below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from appliance.config.devices import (
    DEVICE_TYPES,
    ModbusRtuDeviceSettings,
    ModbusTcpDeviceSettings,
    SerialAsciiDeviceSettings,
    SerialBinaryDeviceSettings,
)
from appliance.config.models import ApplianceConfig
from appliance.field.poller import ModbusPoller, ReadingSink
from appliance.field.serial_sensor import SerialSensor
from appliance.service import Service
from appliance.status.field import BusStatus
from drivers.modbus.rtu import ModbusRtuClient, RtuBus, RtuBusSettings
from drivers.modbus.tcp import ModbusTcpClient
from drivers.serial import Parity, SerialFormat, StopBits


class RtuBusService(Service):
    """The master of one serial line, shared by the pollers of the slaves on it."""

    def __init__(self, name: str, settings: RtuBusSettings) -> None:
        super().__init__()
        self.name = f"bus:{name}"
        self.bus = RtuBus(settings)

    async def open(self) -> None:
        self.bus.start()

    async def close(self) -> None:
        self.bus.stop()

    def status(self) -> BusStatus:
        return BusStatus(**self.basics(), **self.bus.status())


@dataclass(frozen=True, slots=True)
class FieldWiring:
    """What a device builder may need besides its own settings: the bus masters and where readings go."""

    buses: dict[str, RtuBusService]
    sink: ReadingSink


# What DEVICE_TYPES holds: (device id, its settings, the wiring) -> its service.
DeviceBuilder = Callable[[str, Any, FieldWiring], Service]


def modbus_tcp_poller(device_id: str, device: ModbusTcpDeviceSettings, wiring: FieldWiring) -> Service:
    client = partial(ModbusTcpClient, device.host, device.port, device.unit, device.timeout_s)
    endpoint = f"{device.host}:{device.port}/{device.unit}"
    return ModbusPoller(device_id, device, client, wiring.sink, endpoint)


def modbus_rtu_poller(device_id: str, device: ModbusRtuDeviceSettings, wiring: FieldWiring) -> Service:
    client = partial(ModbusRtuClient, wiring.buses[device.bus].bus, device.unit, device.turnaround_s)
    return ModbusPoller(device_id, device, client, wiring.sink, f"{device.bus}/{device.unit}")


def serial_sensor(
    device_id: str, device: SerialAsciiDeviceSettings | SerialBinaryDeviceSettings, wiring: FieldWiring
) -> Service:
    return SerialSensor(device_id, device, wiring.sink)


def build_field(config: ApplianceConfig, sink: ReadingSink) -> list[Service]:
    """Bus masters first, so they run before the pollers of the slaves on them."""
    buses = {
        name: RtuBusService(
            name,
            RtuBusSettings(
                b.url, SerialFormat(b.baudrate, b.bytesize, Parity(b.parity), StopBits(b.stopbits))
            ),
        )
        for name, b in config.buses.items()
    }
    wiring = FieldWiring(buses, sink)
    devices = [
        DEVICE_TYPES.get(device.type)(device_id, device, wiring)
        for device_id, device in config.devices.items()
    ]
    return [*buses.values(), *devices]
