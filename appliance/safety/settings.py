"""The supervisor's own keys of `[safety]`, read from the parsed TOML without the runtime's config models.

The supervisor stays small (no pydantic, no numpy: see docs/safety.md): it checks only the keys it uses,
with the limits below, which the runtime's model (appliance/config/safety.py) takes from here too, so both
read one table. The rules and the other runtime keys are the runtime's to check (`appliance
check-config`); an unknown key is refused by both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.tomlfile import key_name
from hal.gpio.factory import GPIO_BACKENDS

# key: (least, most, default)
LIMITS: dict[str, tuple[int, int, int]] = {
    "heartbeat_interval_ms": (5, 10_000, 100),
    "heartbeat_deadline_ms": (20, 60_000, 500),
    "tick_ms": (1, 1000, 10),
    "realtime_priority": (0, 99, 20),  # SCHED_FIFO if allowed; 0: normal
}
CHOICES: dict[str, tuple[str, ...]] = {
    "supervisor": ("spawn", "external"),  # spawn: `appliance run` starts it (a desktop)
    "watchdog": ("auto", "none", "systemd", "kernel"),  # auto: systemd's if started by it
}


def line_choices() -> dict[str, tuple[str, ...]]:
    """The choices of `[safety.stop_line]`; the GPIO backends are the registry's, plugins included."""
    return {
        "gpio": ("auto", *GPIO_BACKENDS.keys()),  # auto: $APPLIANCE_GPIO, then probing
        "active_level": ("high", "low"),
    }


RUNTIME_KEYS = ("trip_on_qc", "rules")  # the runtime's to check
DEFAULT_SOCKET = "safety.sock"  # under the data directory


class SettingsError(ValueError):
    """Mistakes in `[safety]`, one `FILE: safety.key: problem` line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True, slots=True)
class StopLine:
    gpio: str
    line: int | str  # offset on the chip, or the line's name
    chip: str | None  # /dev/gpiochipN or a label; None: the board's header chip
    active_level: str


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    socket: str
    heartbeat_deadline_ms: int
    tick_ms: int
    realtime_priority: int
    watchdog: str
    stop_line: StopLine


def read_settings(raw: Mapping[str, Any], source: str) -> SupervisorSettings:
    """The supervisor's settings from the parsed file, or SettingsError naming every mistake."""
    section = raw.get("safety")
    if section is None:
        raise SettingsError([f"{source}: safety: missing; the supervisor needs a [safety] section"])
    if not isinstance(section, Mapping):
        raise SettingsError([f"{source}: safety: expected a table"])
    problems: list[str] = []
    known = {*LIMITS, *CHOICES, *RUNTIME_KEYS, "socket", "stop_line"}
    problems += [f"safety.{key_name(key)}: unknown key" for key in section if key not in known]
    numbers = {key: _number(section, key, problems) for key in LIMITS}
    choices = {key: _choice(section, key, CHOICES[key], problems) for key in CHOICES}
    socket = section.get("socket", DEFAULT_SOCKET)
    if not isinstance(socket, str) or not socket:
        problems.append("safety.socket: expected a path")
    if numbers["heartbeat_deadline_ms"] < 2 * numbers["heartbeat_interval_ms"]:
        problems.append(
            f"safety.heartbeat_deadline_ms: {numbers['heartbeat_deadline_ms']} must be at least twice "
            f"heartbeat_interval_ms ({numbers['heartbeat_interval_ms']}), or one late beat trips the line"
        )
    line = _stop_line(section.get("stop_line"), problems)
    if problems or line is None:
        raise SettingsError([f"{source}: {p}" for p in problems])
    return SupervisorSettings(
        str(socket),
        numbers["heartbeat_deadline_ms"],
        numbers["tick_ms"],
        numbers["realtime_priority"],
        choices["watchdog"],
        line,
    )


def _number(section: Mapping[str, Any], key: str, problems: list[str]) -> int:
    least, most, default = LIMITS[key]
    value = section.get(key, default)
    if type(value) is not int:
        problems.append(f"safety.{key}: expected an integer")
        return default
    if not least <= value <= most:
        problems.append(f"safety.{key}: {value} is outside {least}..{most}")
        return default
    return value


def _choice(
    table: Mapping[str, Any], key: str, allowed: tuple[str, ...], problems: list[str], where: str = "safety"
) -> str:
    value = table.get(key, allowed[0])
    if value not in allowed:
        problems.append(f"{where}.{key}: expected one of {', '.join(map(repr, allowed))}")
        return allowed[0]
    return str(value)


def _stop_line(table: object, problems: list[str]) -> StopLine | None:
    if table is None:
        problems.append("safety.stop_line: missing; the line the supervisor drives")
        return None
    if not isinstance(table, Mapping):
        problems.append('safety.stop_line: expected a table such as { gpio = "gpiod", line = 17 }')
        return None
    problems += [
        f"safety.stop_line.{key_name(key)}: unknown key"
        for key in table
        if key not in {*line_choices(), "line", "chip"}
    ]
    line, chip = table.get("line"), table.get("chip")
    if line is None:
        problems.append("safety.stop_line.line: missing; an offset on the chip or the line's name")
    elif type(line) is int and line < 0:
        problems.append(f"safety.stop_line.line: {line} is negative")
    elif type(line) is not int and not (isinstance(line, str) and line):
        problems.append("safety.stop_line.line: expected an offset (integer) or a line name (string)")
    if chip is not None and not (isinstance(chip, str) and chip):
        problems.append("safety.stop_line.chip: expected a /dev/gpiochipN path or a chip label")
    choices = [
        _choice(table, k, allowed, problems, "safety.stop_line") for k, allowed in line_choices().items()
    ]
    if line is None or not (type(line) is int or isinstance(line, str)):
        return None
    return StopLine(choices[0], line, chip if isinstance(chip, str) else None, choices[1])
