"""The tier policy in force: the default table of docs/sync.md with the `[sync.tiers.*]` changes applied."""

from __future__ import annotations

import dataclasses

from appliance.config.sync import SyncSettings, ThresholdSettings
from appliance.records import Priority
from appliance.sync.tiers import DEFAULT_RULES, LinkTier, TierRule, TierThresholds


def rules_from(settings: SyncSettings) -> dict[LinkTier, TierRule]:
    rules = dict(DEFAULT_RULES)
    for name, override in settings.tiers.items():
        tier = LinkTier[name.upper()]
        changes = override.model_dump(exclude_none=True)
        if "classes" in changes:
            changes["classes"] = frozenset(Priority.parse(c) for c in changes["classes"])
        rules[tier] = dataclasses.replace(rules[tier], **changes)
    return rules


def thresholds_from(settings: ThresholdSettings) -> TierThresholds:
    return TierThresholds(**settings.model_dump())
