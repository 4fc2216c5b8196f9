"""The status's figures read and said as a person reads them."""

from __future__ import annotations

import math
from collections.abc import Iterator

from appliance.insights.memory import Check
from appliance.status.service import ServiceStatus


def number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def services(check: Check) -> Iterator[tuple[str, str, str, ServiceStatus]]:
    """(name, kind, device, status) of each service: `modbus:press-1` is kind modbus, device press-1."""
    for name, service in check.status.services.items():
        kind, _, device = name.partition(":")
        yield name, kind, device, service


# Saying figures as a person reads them.


def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 3600:
        return f"{s} s" if s < 60 else f"{s // 60} min"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(s // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def window(seconds: float) -> str:
    return "the last minute" if seconds <= 60 else f"the last {duration(seconds)}"


def figure(n: float) -> str:
    return f"{n:.0f}" if n == int(n) else f"{n:.3g}"


def count(n: float, word: str, plural: str | None = None) -> str:
    return f"{figure(n)} {word if n == 1 else plural or word + 's'}"


def size(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def last(error: object, label: str = "last error") -> str:
    return f"; {label}: {said}" if (said := text(error)) else ""
