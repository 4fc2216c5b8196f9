"""Builds the field side of the runtime from the config: one bus service per RTU line, one poller per
Modbus device (a TCP connection of its own, or its line's shared master), one service per serial sensor."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from appliance.config.models import (
    ApplianceConfig,
    ModbusRtuDeviceSettings,
    ModbusTcpDeviceSettings,
    SerialAsciiDeviceSettings,
    SerialBinaryDeviceSettings,
)
from appliance.poller import ModbusPoller, ReadingSink
from appliance.serial_sensor import SerialSensor
from appliance.service import Service
from drivers.modbus.client import ModbusClient
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

    def details(self) -> dict[str, Any]:
        return self.bus.status()


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
    devices: list[Service] = []
    for device_id, device in config.devices.items():
        client: Callable[[], ModbusClient]
        if isinstance(device, SerialAsciiDeviceSettings | SerialBinaryDeviceSettings):
            devices.append(SerialSensor(device_id, device, sink))
            continue
        if isinstance(device, ModbusTcpDeviceSettings):
            client = partial(ModbusTcpClient, device.host, device.port, device.unit, device.timeout_s)
            endpoint = f"{device.host}:{device.port}/{device.unit}"
        elif isinstance(device, ModbusRtuDeviceSettings):
            client = partial(ModbusRtuClient, buses[device.bus].bus, device.unit, device.turnaround_s)
            endpoint = f"{device.bus}/{device.unit}"
        devices.append(ModbusPoller(device_id, device, client, sink, endpoint))
    return [*buses.values(), *devices]
