"""The health insights assessor: runs every rule over a status document and keeps what they remember."""

from __future__ import annotations

from appliance.insights.kinds import SEVERITY_ORDER
from appliance.insights.memory import BacklogHistory, Check, Memory, Rule
from appliance.insights.rules_field import FIELD_RULES
from appliance.insights.rules_plant import PLANT_RULES
from appliance.status.document import InsightStatus, Status

RULES: tuple[Rule, ...] = FIELD_RULES + PLANT_RULES


class HealthInsights:
    """Reads status documents (GET /api/v1/status) and says what is wrong and what to do, worst first."""

    def __init__(self) -> None:
        self._memory = Memory()
        self._backlog = BacklogHistory()

    def assess(self, status: Status, now: float) -> list[InsightStatus]:
        """The insights of one status document at wall-clock time `now`, most severe first.

        Conditions that must last a while (a service down, a line lost, records waiting) and counters that
        must rise are judged against earlier calls: call it regularly, not only when someone asks.
        """
        check = Check(status, now, self._memory, self._backlog)
        found = [insight for rule in RULES for insight in rule(check)]
        self._memory.sweep()
        found.sort(key=lambda i: (SEVERITY_ORDER[i.severity], i.since, i.id))
        return [InsightStatus(**insight.to_dict()) for insight in found]

    def remembered(self) -> int:
        """How many conditions, counters and backlog samples are kept (bounded by the latest status)."""
        return len(self._memory) + len(self._backlog.samples)
