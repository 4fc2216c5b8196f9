"""The QC decision policy: per class a severity, a score threshold and a debounce of k frames out of n.

A class is confirmed on the frame where at least k of its last n frames scored at or above the threshold,
and stays confirmed (no new decision) until fewer than k of the last n do: one defective part seen on
several frames is one decision, and a single noisy frame is none.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass

from appliance.records import Severity


@dataclass(frozen=True, slots=True)
class ClassRule:
    label: str
    severity: Severity
    threshold: float = 0.5
    k: int = 1
    n: int = 1


@dataclass(frozen=True, slots=True)
class Decision:
    label: str
    severity: Severity
    score: float
    frame: int
    ts: float


class DecisionPolicy:
    def __init__(self, rules: Mapping[str, ClassRule]) -> None:
        self.rules = dict(rules)
        self._windows = {label: collections.deque[bool](maxlen=rule.n) for label, rule in self.rules.items()}
        self._active: set[str] = set()

    def decide(self, scores: Mapping[str, float], frame: int, ts: float) -> list[Decision]:
        """Feed one frame's score per class (classes missing from `scores` count as 0)."""
        decisions = []
        for label, rule in self.rules.items():
            score = scores.get(label, 0.0)
            window = self._windows[label]
            window.append(score >= rule.threshold)
            confirmed = sum(window) >= rule.k
            if confirmed and label not in self._active:
                self._active.add(label)
                decisions.append(Decision(label, rule.severity, score, frame, ts))
            elif not confirmed:
                self._active.discard(label)
        return decisions

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self._active)
