"""The request planner: few reads, each within the protocol's limits, every point covered once."""

from __future__ import annotations

import pytest

from drivers.modbus.planner import MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ, CostModel, plan_reads
from drivers.modbus.registers import DataType, Point, RegisterMap, Table


def spans(register_map: RegisterMap, max_gap: int = 8) -> list[tuple[str, int, int]]:
    return [(str(b.table), b.address, b.count) for b in plan_reads(register_map, max_gap)]


def test_contiguous_points_become_one_read() -> None:
    rm = RegisterMap.of(
        [
            Point("a", Table.INPUT, 0, DataType.FLOAT32),
            Point("b", Table.INPUT, 2),
            Point("c", Table.INPUT, 3, DataType.FLOAT64),
        ]
    )
    assert spans(rm) == [("input", 0, 7)]


def test_small_gaps_are_bridged_and_large_ones_split() -> None:
    rm = RegisterMap.of(
        [Point("a", Table.HOLDING, 0), Point("b", Table.HOLDING, 5), Point("c", Table.HOLDING, 40)]
    )
    assert spans(rm, max_gap=4) == [("holding", 0, 6), ("holding", 40, 1)]
    assert spans(rm, max_gap=0) == [("holding", 0, 1), ("holding", 5, 1), ("holding", 40, 1)]
    assert spans(rm, max_gap=40) == [("holding", 0, 41)]


def test_reads_never_exceed_the_protocol_limits() -> None:
    regs = RegisterMap.of([Point(f"r{i}", Table.HOLDING, i * 2, DataType.FLOAT32) for i in range(200)])
    blocks = plan_reads(regs)
    assert all(b.count <= MAX_REGISTERS_PER_READ for b in blocks)
    assert sum(b.count for b in blocks) == 400
    assert len(blocks) == 4  # ceil(400 / 124): a float32 never straddles two reads
    bits = RegisterMap.of([Point(f"c{i}", Table.COIL, i, DataType.BOOL) for i in range(4500)])
    assert [b.count for b in plan_reads(bits)] == [MAX_BITS_PER_READ, MAX_BITS_PER_READ, 500]


def test_tables_are_planned_separately_and_every_point_once() -> None:
    rm = RegisterMap.of(
        [
            Point("h", Table.HOLDING, 0),
            Point("i", Table.INPUT, 0),
            Point("i2", Table.INPUT, 1),
            Point("c", Table.COIL, 3, DataType.BOOL),
            Point("d", Table.DISCRETE_INPUT, 3, DataType.BOOL),
        ]
    )
    blocks = plan_reads(rm)
    assert sorted(p.channel for b in blocks for p in b.points) == ["c", "d", "h", "i", "i2"]
    assert {str(b.table) for b in blocks} == {"coil", "discrete_input", "holding", "input"}


def test_slices_pick_each_point_out_of_its_block() -> None:
    rm = RegisterMap.of([Point("a", Table.INPUT, 10), Point("b", Table.INPUT, 13, DataType.UINT32)])
    (block,) = plan_reads(rm)
    values = list(range(100, 100 + block.count))
    assert [values[block.slice_for(p)] for p in block.points] == [[100], [103, 104]]


def test_barriers_start_new_reads() -> None:
    rm = RegisterMap.of([Point("a", Table.INPUT, 0), Point("b", Table.INPUT, 2), Point("c", Table.INPUT, 4)])
    assert spans(rm) == [("input", 0, 5)]
    assert [(b.address, b.count) for b in plan_reads(rm, 8, frozenset({(Table.INPUT, 2)}))] == [
        (0, 1),
        (2, 3),
    ]
    assert len(plan_reads(rm, 8, frozenset({(Table.HOLDING, 2)}))) == 1  # a barrier in another table


def test_cost_model_fits_request_and_register_cost() -> None:
    costs = CostModel()
    assert costs.best_gap() is None
    for count in (1, 10, 50, 100) * 5:
        costs.add(count, 0.002 + 0.00001 * count)  # 2 ms a request, 10 us a register
    fitted = costs.fit()
    assert fitted is not None
    assert fitted[0] == pytest.approx(0.002) and fitted[1] == pytest.approx(0.00001)
    assert costs.best_gap() == 124  # 200 registers' worth per request: bridge all the protocol allows
    slow_line = CostModel()
    for count in (2, 20, 60):
        slow_line.add(count, 0.004 + 0.001 * count)  # serial: a register costs 1 ms
    assert slow_line.best_gap() == 4
    free = CostModel()
    for count in (1, 2):
        free.add(count, 0.001)
    assert free.best_gap() == 124
