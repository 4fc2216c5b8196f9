"""What the insight rules see of one assessment and remember between assessments."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from appliance.insights.kinds import BACKLOG_GROWTH_S, BACKLOG_SAMPLE_S, COUNTER_HOLD_S, KINDS, Insight, Topic
from appliance.records import Severity
from appliance.status.document import Status


@dataclass(slots=True)
class _Counter:
    """A cumulative counter and its latest run of rises."""

    total: float
    base: float = 0.0  # the total before the run began
    first_rise: float = 0.0
    last_rise: float | None = None


class Memory:
    """What the rules remember between assessments; whatever an assessment did not touch is forgotten."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._counters: dict[str, _Counter] = {}
        self._touched: set[str] = set()

    def since(self, key: str, now: float, began: float | None = None) -> float:
        """When a condition that holds now was first seen (or `began`, if that is earlier)."""
        first = self._since.get(key, now)
        if began is not None and began < first:
            first = began
        self._since[key] = first
        self._touched.add(key)
        return first

    def rise(self, key: str, total: float, now: float) -> tuple[float, float] | None:
        """How much a counter rose in its latest run of rises and when that run began, while it is recent."""
        self._touched.add(key)
        counter = self._counters.get(key)
        if counter is None or total < counter.total:  # first sight, or the counter began again
            self._counters[key] = _Counter(total)
            return None
        if total > counter.total:
            if counter.last_rise is None or now - counter.last_rise > COUNTER_HOLD_S:
                counter.base, counter.first_rise = counter.total, now
            counter.total, counter.last_rise = total, now
        if counter.last_rise is None or now - counter.last_rise > COUNTER_HOLD_S:
            return None
        return counter.total - counter.base, counter.first_rise

    def sweep(self) -> None:
        for table in (self._since, self._counters):
            for key in table.keys() - self._touched:
                del table[key]
        self._touched.clear()

    def __len__(self) -> int:
        return len(self._since) + len(self._counters)


class BacklogHistory:
    """The sync backlog of the classes the link tier sends, sampled every few seconds over a few minutes."""

    def __init__(self) -> None:
        self.tier: str | None = None
        self.samples: collections.deque[tuple[float, int]] = collections.deque(
            maxlen=int(BACKLOG_GROWTH_S / BACKLOG_SAMPLE_S) + 1
        )

    def add(self, now: float, tier: str, total: int) -> None:
        if tier != self.tier or (self.samples and now < self.samples[-1][0]):
            self.samples.clear()  # another tier sends other classes; a clock step breaks the series
            self.tier = tier
        if not self.samples or now - self.samples[-1][0] >= BACKLOG_SAMPLE_S:
            self.samples.append((now, total))

    def growth(self) -> tuple[int, int, float] | None:
        """(backlog then, backlog now, since when) if its late lows stayed above its early highs."""
        samples = list(self.samples)
        if len(samples) < 6 or samples[-1][0] - samples[0][0] < BACKLOG_GROWTH_S:
            return None
        third = len(samples) // 3  # lows and highs, because batches leave the backlog in a sawtooth
        if min(n for _, n in samples[-third:]) <= max(n for _, n in samples[:third]):
            return None
        return samples[0][1], samples[-1][1], samples[0][0]


@dataclass(slots=True)
class Check:
    """One assessment: the status, the time, and what the rules remember."""

    status: Status
    now: float
    memory: Memory
    backlog: BacklogHistory

    def since(self, key: str, began: float | None = None) -> float:
        """When a condition that holds now was first seen (or `began`, if earlier)."""
        return self.memory.since(key, self.now, began)

    def rise(self, key: str, total: float | None) -> tuple[float, float] | None:
        """(by how much, since when) a counter has been rising lately."""
        return None if total is None else self.memory.rise(key, total, self.now)

    def say(
        self,
        kind: str,
        key: str,
        message: str,
        *,
        name: str = "",
        began: float | None = None,
        severity: Severity | None = None,
        topic: Topic | None = None,
    ) -> Insight:
        """An insight of a kind (id `kind:key`) about a condition seen since `began` (or first seen now)."""
        ident = f"{kind}:{key}" if key else kind
        what = KINDS[kind]
        since = self.memory.since(ident, self.now, began)
        advice = what.advice.format(name=name or key)
        return Insight(ident, severity or what.severity, topic or what.topic, message, advice, since)


Rule = Callable[[Check], Iterator[Insight]]
