"""Request planning: merge a register map into few reads, bridging gaps.

The rule is Telegraf's `optimization = "max_insert"`: sort by address, extend the current read while
the next point fits within the protocol limit and the hole before it is at most `max_gap` registers.
`CostModel` makes `max_gap` automatic: it fits the time of a request as a + b x registers from the reads
actually made, and bridging a hole pays while it costs less than a request does, so the best gap is
a / b. Barriers stop merging at addresses where a bridged read was refused (holes a device rejects).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from drivers.modbus.registers import Point, RegisterMap, Table

MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: a contiguous span of a table and the points it carries."""

    table: Table
    address: int
    count: int
    points: tuple[Point, ...]

    def slice_for(self, point: Point) -> slice:
        start = point.address - self.address
        return slice(start, start + point.count)


def plan_reads(
    register_map: RegisterMap, max_gap: int = 8, barriers: frozenset[tuple[Table, int]] = frozenset()
) -> list[Block]:
    """The reads that cover every point, each within the protocol's size limit; a point whose
    (table, address) is a barrier always starts a new read."""
    blocks: list[Block] = []
    for table in Table:
        limit = MAX_BITS_PER_READ if table.is_bits else MAX_REGISTERS_PER_READ
        current: list[Point] = []
        start = end = 0
        for point in register_map.in_table(table):
            mergeable = (table, point.address) not in barriers
            if current and mergeable and point.address - end <= max_gap and point.end - start <= limit:
                current.append(point)
                end = max(end, point.end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [point], point.address, point.end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks


class CostModel:
    """Time of one read as `per_request_s + per_register_s * count`, fitted from recent reads."""

    def __init__(self, window: int = 200) -> None:
        self.samples: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)

    def add(self, count: int, seconds: float) -> None:
        self.samples.append((count, seconds))

    def fit(self) -> tuple[float, float] | None:
        """(per_request_s, per_register_s), or None until reads of at least two sizes were seen."""
        if len({c for c, _ in self.samples}) < 2:
            return None
        n = len(self.samples)
        mean_c = sum(c for c, _ in self.samples) / n
        mean_t = sum(t for _, t in self.samples) / n
        var = sum((c - mean_c) ** 2 for c, _ in self.samples)
        slope = sum((c - mean_c) * (t - mean_t) for c, t in self.samples) / var
        return max(mean_t - slope * mean_c, 0.0), max(slope, 0.0)

    def best_gap(self, limit: int = MAX_REGISTERS_PER_READ - 1) -> int | None:
        """The widest hole worth reading through rather than starting another request."""
        fitted = self.fit()
        if fitted is None:
            return None
        per_request, per_register = fitted
        if per_register <= 0:
            return limit  # registers are free: bridge everything the protocol allows
        return max(0, min(limit, int(per_request / per_register)))
