"""Choosing the GPIO backend: explicit config, then $APPLIANCE_GPIO, then probing, each fallback logged.

The backends are entries of `GPIO_BACKENDS` (hal/registry.py), imported only when chosen: a board
support module adds one with `GPIO_BACKENDS.register("name", "package.module:Class", priority=...)`,
and the config file's `stop_line.gpio` takes its name. Probing tries the entries with a priority,
highest first. The mock has none and is used only when asked for by name: a device that silently drove
a mock instead of its stop relay would be worse than one that refuses to start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from hal.gpio.base import GpioBackend, GpioError
from hal.registry import Registry

log = logging.getLogger(__name__)

ENV = "APPLIANCE_GPIO"

GPIO_BACKENDS: Registry[Callable[[], GpioBackend]] = Registry("GPIO backend")
GPIO_BACKENDS.register("gpiod", "hal.gpio.chardev:ChardevBackend", priority=20)  # the GPIO character device
GPIO_BACKENDS.register("rpigpio", "hal.gpio.rpigpio:RpiGpioBackend", priority=10)
GPIO_BACKENDS.register("mock", "hal.gpio.mock:MockChip")


def open_backend(choice: str | None = None) -> GpioBackend:
    """The backend named by `choice` (config) or $APPLIANCE_GPIO, else the first real one that works."""
    named = choice if choice and choice != "auto" else os.environ.get(ENV) or None
    if named:
        if named not in GPIO_BACKENDS:
            raise GpioError(f"unknown GPIO backend {named!r}; known: {', '.join(GPIO_BACKENDS.keys())}")
        source = "config" if choice and choice != "auto" else f"${ENV}"
        try:
            backend = GPIO_BACKENDS.get(named)()
        except (ImportError, GpioError, OSError) as exc:
            raise GpioError(f"GPIO backend {named!r} (from {source}) is unavailable: {exc}") from exc
        log.info("GPIO backend %s (from %s)", named, source)
        return backend
    reasons = []
    for entry in GPIO_BACKENDS.by_priority():
        try:
            backend = GPIO_BACKENDS.get(entry.key)()
        except (ImportError, GpioError, OSError) as exc:
            reasons.append(f"{entry.key}: {exc}")
            log.info("GPIO backend %s unavailable (%s); trying the next", entry.key, exc)
            continue
        log.info("GPIO backend %s (probed)", entry.key)
        return backend
    raise GpioError("no GPIO backend available (" + "; ".join(reasons) + '); set gpio = "mock" on a desk')
