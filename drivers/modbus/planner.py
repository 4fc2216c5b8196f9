"""Request planning: merge a register map into few reads, bridging small gaps.

Issue 4 grows this into a cost-tuned planner; the rule here is the classic one (Telegraf's
`optimization = "max_insert"`): sort by address, extend the current read while the next point fits
within the protocol limit and the hole before it is at most `max_gap` registers.
"""

from __future__ import annotations

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


def plan_reads(register_map: RegisterMap, max_gap: int = 8) -> list[Block]:
    """The reads that cover every point, each within the protocol's size limit."""
    blocks: list[Block] = []
    for table in Table:
        limit = MAX_BITS_PER_READ if table.is_bits else MAX_REGISTERS_PER_READ
        current: list[Point] = []
        start = end = 0
        for point in register_map.in_table(table):
            if current and point.address - end <= max_gap and point.end - start <= limit:
                current.append(point)
                end = max(end, point.end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [point], point.address, point.end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks
