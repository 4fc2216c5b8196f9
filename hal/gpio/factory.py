"""Choosing the GPIO backend: explicit config, then $APPLIANCE_GPIO, then probing, each fallback logged.

Probing tries the real backends only. The mock is used when it is asked for by name: a device that
silently drove a mock instead of its stop relay would be worse than one that refuses to start.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable

from hal.gpio.base import GpioBackend, GpioError

log = logging.getLogger(__name__)

ENV = "APPLIANCE_GPIO"


def _chardev() -> GpioBackend:
    return importlib.import_module("hal.gpio.chardev").ChardevBackend()  # type: ignore[no-any-return]


def _rpigpio() -> GpioBackend:
    return importlib.import_module("hal.gpio.rpigpio").RpiGpioBackend()  # type: ignore[no-any-return]


def _mock() -> GpioBackend:
    return importlib.import_module("hal.gpio.mock").MockChip()  # type: ignore[no-any-return]


BACKENDS: dict[str, Callable[[], GpioBackend]] = {"gpiod": _chardev, "rpigpio": _rpigpio, "mock": _mock}
PROBE_ORDER = ("gpiod", "rpigpio")


def open_backend(choice: str | None = None) -> GpioBackend:
    """The backend named by `choice` (config) or $APPLIANCE_GPIO, else the first real one that works."""
    named = choice if choice and choice != "auto" else os.environ.get(ENV) or None
    if named:
        if named not in BACKENDS:
            raise GpioError(f"unknown GPIO backend {named!r}; known: {', '.join(BACKENDS)}")
        source = "config" if choice and choice != "auto" else f"${ENV}"
        try:
            backend = BACKENDS[named]()
        except (ImportError, GpioError, OSError) as exc:
            raise GpioError(f"GPIO backend {named!r} (from {source}) is unavailable: {exc}") from exc
        log.info("GPIO backend %s (from %s)", named, source)
        return backend
    reasons = []
    for name in PROBE_ORDER:
        try:
            backend = BACKENDS[name]()
        except (ImportError, GpioError, OSError) as exc:
            reasons.append(f"{name}: {exc}")
            log.info("GPIO backend %s unavailable (%s); trying the next", name, exc)
            continue
        log.info("GPIO backend %s (probed)", name)
        return backend
    raise GpioError("no GPIO backend available (" + "; ".join(reasons) + '); set gpio = "mock" on a desk')
