"""The stop harness of `bench perf`'s runtime section, in small: `appliance run` with the whole bench world
started and stopped again and again on one data directory under two busy loops per core, at every kind
of moment. Every stop ends within the 2 s budget with exit 0, nothing committed is lost, nothing is left
running."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness.load import cpu_load
from bench.perf.stops import MOMENTS, stop_runs

RUNS = 2 * len(MOMENTS)


@pytest.mark.slow
@pytest.mark.realtime("every stop ends within the 2 s stop budget, under load too (docs/running.md)")
def test_every_stop_under_load_is_within_budget_loses_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    with cpu_load(RUNS * 10.0):
        runs = stop_runs(RUNS, tmp_path, seed=1)
    assert sorted({r.moment for r in runs}) == sorted(MOMENTS)
    for r in runs:
        assert r.clean, r  # exit 0 (or the signal came before the interpreter could take it), nothing lost
        assert r.stop_s <= 2.0, r
    assert sum(r.committed for r in runs) > 0
