"""Register layouts for tests: one table of rows builds the simulated slave and the device reading it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from appliance.config.models import ModbusTcpDeviceSettings
from bench.config import ModbusTcpSlave

# (channel, table, address, datatype, byte_order, word_order, scale, offset, value)
Row = tuple[str, str, int, str, str, str, float, float, float]


def sim_slave(rows: Sequence[Row], port: int, name: str = "sim") -> ModbusTcpSlave:
    """A simulated slave serving each row's value as a constant."""
    return ModbusTcpSlave.model_validate(
        {
            "name": name,
            "port": port,
            "unit": 1,
            "registers": [
                {
                    "table": t,
                    "address": a,
                    "datatype": d,
                    "byte_order": bo,
                    "word_order": wo,
                    "scale": s,
                    "offset": o,
                    "signal": {"type": "constant", "value": v},
                }
                for _, t, a, d, bo, wo, s, o, v in rows
            ],
        }
    )


def tcp_device(
    rows: Sequence[Row], port: int, extra: Sequence[dict[str, Any]] = (), **options: Any
) -> ModbusTcpDeviceSettings:
    """A Modbus TCP device on loopback whose register map reads the rows (plus `extra` registers)."""
    registers = [
        {
            "channel": c,
            "table": t,
            "address": a,
            "datatype": d,
            "byte_order": bo,
            "word_order": wo,
            "scale": s,
            "offset": o,
        }
        for c, t, a, d, bo, wo, s, o, _ in rows
    ]
    return ModbusTcpDeviceSettings.model_validate(
        {
            "type": "modbus_tcp",
            "host": "127.0.0.1",
            "port": port,
            "poll_interval_s": 0.05,
            "timeout_s": 0.5,
            "registers": registers + list(extra),
            **options,
        }
    )
