"""The decision policy's debounce and the evidence budget."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from appliance.qc.evidence import EvidenceStore, evidence_name
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
    store = EvidenceStore(tmp_path / "ev", budget_bytes=300_000, thumbnail_px=64)
    store.start()
    names = []
    for i in range(30):
        name = evidence_name("crack", i, time.time())
        names.append(name)
        store.save(name, rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))  # noise: big JPEGs
        time.sleep(0.01)
    store.stop()
    status = store.status()
    assert status["saved"] + status["dropped"] == 30 and status["saved"] > 5
    assert status["bytes"] <= 300_000 and status["deleted"] > 0
    on_disk = sum(p.stat().st_size for p in (tmp_path / "ev").iterdir())
    assert on_disk == status["bytes"]
    kept = sorted(p.name for p in (tmp_path / "ev").iterdir())
    assert any(names[-1] in k for k in kept) or status["dropped"]  # the newest is kept unless it was dropped
    assert not any(k.startswith(names[0] + ".") for k in kept)  # the oldest went first
