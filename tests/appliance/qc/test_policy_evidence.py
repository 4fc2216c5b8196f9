"""The decision policy's debounce and the evidence budget."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from appliance.qc.evidence import EvidenceStore
from appliance.qc.evidence_files import evidence_name
from appliance.qc.policy import ClassRule, DecisionPolicy
from appliance.records import Severity


def test_k_of_n_confirms_once_and_rearms() -> None:
    policy = DecisionPolicy({"crack": ClassRule("crack", Severity.CRITICAL, threshold=0.6, k=2, n=3)})
    scores = [0.9, 0.1, 0.2, 0.7, 0.8, 0.9, 0.95, 0.1, 0.1, 0.1, 0.9, 0.9]
    fired = [i for i, s in enumerate(scores) if policy.decide({"crack": s}, i, float(i))]
    # frame 0 alone is noise; 3 and 4 confirm (2 of 3); it stays confirmed through 6, clears when fewer
    # than 2 of the last 3 are high (frame 8), and 10, 11 confirm a second part
    assert fired == [4, 11]
    assert policy.active == frozenset({"crack"})


def test_each_class_has_its_own_rule_and_missing_scores_count_as_zero() -> None:
    policy = DecisionPolicy(
        {
            "stain": ClassRule("stain", Severity.WARNING, 0.5),
            "scratch": ClassRule("scratch", Severity.INFO, 0.9, 1, 1),
        }
    )
    decisions = policy.decide({"stain": 0.6, "scratch": 0.95}, 1, 1.0)
    assert [(d.label, d.severity) for d in decisions] == [
        ("stain", Severity.WARNING),
        ("scratch", Severity.INFO),
    ]
    assert policy.decide({}, 2, 2.0) == []
    assert policy.active == frozenset()


def test_evidence_keeps_within_its_budget_oldest_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder, budget = tmp_path / "ev", 300_000
    store = EvidenceStore(folder, budget_bytes=budget, thumbnail_px=64)
    store.start()
    written: list[tuple[str, int]] = []  # every file, in the order written, with its size
    try:
        for i in range(30):
            name = evidence_name("crack", i, time.time())
            store.save(name, rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))  # noise: big JPEGs
            deadline = time.monotonic() + 10
            while store.status().saved + store.status().errors < i + 1:  # one at a time: none dropped
                assert time.monotonic() < deadline, store.status()
                time.sleep(0.002)
            for file in (f"{name}.jpg", f"{name}.thumb.jpg"):  # the newest: the budget never takes them
                assert (folder / file).exists(), f"{file} deleted by its own save, not the oldest first"
                written.append((file, (folder / file).stat().st_size))
    finally:
        store.stop()
    # what must remain: the newest files that fit the budget (at least a frame and its thumbnail)
    expected: list[str] = []
    total = 0
    for file, size in reversed(written):
        if total + size > budget and len(expected) >= 2:
            break
        expected.append(file)
        total += size
    deleted = len(written) - len(expected)
    assert 2 < len(expected) < len(written) - 2  # the budget kept several and removed several
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    assert written[deleted - 1][1] + total > budget  # the newest file deleted did not fit: the budget took it
    assert store.status().model_dump() == {
        "saved": 30,
        "deleted": deleted,
        "dropped": 0,
        "errors": 0,
        "bytes": total,
        "budget_bytes": budget,
        "files": len(expected),
    }
    assert sum(p.stat().st_size for p in folder.iterdir()) == total <= budget
