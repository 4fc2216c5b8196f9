"""How a typed status field becomes a Prometheus metric: a `Metric` in the field's annotation.

    polls: Annotated[int, Metric("appliance_modbus_polls_total", "Polls of a device's registers.")]

/metrics (appliance/web/metrics.py) walks the models and exports every annotated field whose value is a
number; a `{name: number}` field becomes one sample per name, labelled `by`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pydantic import BaseModel

MIB = 1024 * 1024
MS = 1e-3  # from milliseconds to seconds


@dataclass(frozen=True, slots=True)
class Metric:
    """The metric a status field becomes. `scale` turns the field's unit into the metric's base unit; a name
    ending in _total makes a counter, any other a gauge."""

    name: str
    help: str
    scale: float = 1.0
    by: str | None = None  # the field is a {name: number} map: one sample per name, labelled `by`

    @property
    def counter(self) -> bool:
        return self.name.endswith("_total")

    def scaled(self, value: float) -> float:
        """`value` in base units; 15 significant digits drop the float noise of the product (0.119 * 1e6)."""
        return float(value) if self.scale == 1 else float(f"{value * self.scale:.15g}")


@functools.cache
def metric_fields(model: type[BaseModel]) -> tuple[tuple[str, Metric], ...]:
    """The fields of `model` that carry a Metric, in declaration order."""
    return tuple(
        (name, meta)
        for name, info in model.model_fields.items()
        for meta in info.metadata
        if isinstance(meta, Metric)
    )
