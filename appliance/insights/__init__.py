"""Health insights: the status document's figures turned into plain sentences of what is wrong and what to do.

`HealthInsights.assess()` runs on every status build, so each rule is one small pass over the status. What is
kept between calls (when a condition was first seen, the last value of a counter, a few minutes of the sync
backlog) covers only what the latest status mentions, so it stays as small as the status itself.

`kinds` holds what each insight says and the thresholds, `memory` what is kept between calls, `figures` how
the status's figures are read and said, `rules_field` and `rules_plant` the rules, `assessor` the class.
"""

from __future__ import annotations

from appliance.insights.assessor import RULES, HealthInsights
from appliance.insights.kinds import (
    BACKLOG_GROWTH_S,
    BACKLOG_SAMPLE_S,
    CAMERA_DOWN_S,
    COUNTER_HOLD_S,
    CRITICAL_SERVICES,
    DEFAULT_LATENCY_BUDGET_MS,
    DISK_FREE_CRITICAL,
    DISK_FREE_WARNING,
    ESTOP_STARTING_S,
    KINDS,
    LOOP_LAG_CRITICAL_MS,
    LOOP_LAG_MS,
    SENSOR_BAD_S,
    SERIAL_DOWN_S,
    SERVICE_DOWN_S,
    SERVICE_TOPICS,
    SEVERITY_ORDER,
    SYNC_OFFLINE_S,
    SYNC_OLDEST_S,
    Insight,
    Kind,
    Topic,
)
from appliance.insights.memory import (
    Rule,
)
from appliance.insights.rules_field import (
    camera_down,
    drivers_failing,
    inference_fallen_back,
    qc_slow,
    sensors_silent,
    services_down,
)
from appliance.insights.rules_plant import (
    disk_full,
    loop_lagging,
    stop_output,
    store_troubled,
    sync_behind,
    sync_offline,
    sync_plain,
)

__all__ = [
    "BACKLOG_GROWTH_S",
    "BACKLOG_SAMPLE_S",
    "CAMERA_DOWN_S",
    "COUNTER_HOLD_S",
    "CRITICAL_SERVICES",
    "DEFAULT_LATENCY_BUDGET_MS",
    "DISK_FREE_CRITICAL",
    "DISK_FREE_WARNING",
    "ESTOP_STARTING_S",
    "KINDS",
    "LOOP_LAG_CRITICAL_MS",
    "LOOP_LAG_MS",
    "RULES",
    "SENSOR_BAD_S",
    "SERIAL_DOWN_S",
    "SERVICE_DOWN_S",
    "SERVICE_TOPICS",
    "SEVERITY_ORDER",
    "SYNC_OFFLINE_S",
    "SYNC_OLDEST_S",
    "HealthInsights",
    "Insight",
    "Kind",
    "Rule",
    "Topic",
    "camera_down",
    "disk_full",
    "drivers_failing",
    "inference_fallen_back",
    "loop_lagging",
    "qc_slow",
    "sensors_silent",
    "services_down",
    "stop_output",
    "store_troubled",
    "sync_behind",
    "sync_offline",
    "sync_plain",
]
