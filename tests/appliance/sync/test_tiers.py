"""The tier policy table and the goodput thresholds with their hysteresis."""

from __future__ import annotations

import itertools

import pytest

from appliance import records
from appliance.sync.tiers import DEFAULT_RULES, KIB, MIB, LinkTier, Priority, TierRule, TierThresholds

ALL = frozenset(Priority)


def test_priority_is_the_records_class_with_labels() -> None:
    assert Priority is records.Priority
    assert [p.label for p in sorted(Priority)] == ["critical", "important", "normal", "background"]
    assert all(Priority.parse(p.label) is p for p in Priority)
    assert Priority.parse("Critical") is Priority.CRITICAL
    with pytest.raises(KeyError):
        Priority.parse("urgent")


def test_link_tiers_are_ordered_from_worst_to_best() -> None:
    assert sorted(LinkTier, reverse=True)[0] is LinkTier.UNMETERED
    assert LinkTier.OFFLINE < LinkTier.MINIMAL < LinkTier.CONSERVATIVE < LinkTier.NORMAL < LinkTier.UNMETERED
    assert [t.label for t in LinkTier] == ["offline", "minimal", "conservative", "normal", "unmetered"]


@pytest.mark.parametrize(
    ("tier", "rule"),
    [
        (LinkTier.OFFLINE, TierRule(frozenset(), 19, 10000, 64 * KIB, 300.0)),
        (LinkTier.MINIMAL, TierRule(frozenset({Priority.CRITICAL}), 19, 10000, 64 * KIB, 300.0)),
        (
            LinkTier.CONSERVATIVE,
            TierRule(ALL - {Priority.NORMAL, Priority.BACKGROUND}, 12, 20000, 512 * KIB, 60.0),
        ),
        (LinkTier.NORMAL, TierRule(ALL - {Priority.BACKGROUND}, 6, 50000, 2 * MIB, 15.0)),
        (LinkTier.UNMETERED, TierRule(ALL, 6, 50000, 2 * MIB, 15.0)),
    ],
)
def test_default_rules_follow_the_mission_table(tier: LinkTier, rule: TierRule) -> None:
    assert DEFAULT_RULES[tier] == rule


def test_a_better_tier_sends_more_in_larger_batches_and_never_less_often() -> None:
    rules = [DEFAULT_RULES[t] for t in LinkTier]
    assert set(DEFAULT_RULES) == set(LinkTier)
    for worse, better in itertools.pairwise(rules):
        assert worse.classes < better.classes
        assert worse.batch_bytes <= better.batch_bytes and worse.interval_s >= better.interval_s
    assert all(Priority.CRITICAL in r.classes for r in rules[1:])


def test_default_rules_are_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_RULES[LinkTier.MINIMAL] = DEFAULT_RULES[LinkTier.NORMAL]  # type: ignore[index]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"minimal_below_mbit": 30.0},
        {"minimal_below_mbit": 0.0},
        {"hysteresis": 1.0},
        {"hysteresis": -0.1},
        {"hold_s": -1.0},
        {"probe_interval_s": 0.0},
    ],
)
def test_thresholds_refuse_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need|fraction"):
        TierThresholds(**kwargs)


T = LinkTier


@pytest.mark.parametrize(
    ("mbit", "current", "level"),
    [
        (5.9, T.MINIMAL, T.MINIMAL),  # above 5 but not by the 20 %
        (6.0, T.MINIMAL, T.MINIMAL),  # exactly the edge is not past it
        (6.1, T.MINIMAL, T.CONSERVATIVE),
        (4.1, T.CONSERVATIVE, T.CONSERVATIVE),  # below 5 but not by the 20 %
        (4.0, T.CONSERVATIVE, T.CONSERVATIVE),
        (3.9, T.CONSERVATIVE, T.MINIMAL),
        (29.9, T.CONSERVATIVE, T.CONSERVATIVE),
        (30.1, T.CONSERVATIVE, T.NORMAL),
        (20.0, T.NORMAL, T.NORMAL),
        (19.9, T.NORMAL, T.CONSERVATIVE),
        (20.1, T.UNMETERED, T.NORMAL),  # the level is bandwidth only: unmetered is the hint's business
        (3.9, T.UNMETERED, T.MINIMAL),  # a collapse passes both thresholds at once
        (31.0, T.OFFLINE, T.NORMAL),
        (25.0, T.MINIMAL, T.CONSERVATIVE),
        (25.0, T.NORMAL, T.NORMAL),  # on the threshold the link stays where it was
    ],
)
def test_level_needs_the_hysteresis_margin_to_cross_a_threshold(
    mbit: float, current: LinkTier, level: LinkTier
) -> None:
    assert TierThresholds().level(mbit, current) is level


def test_without_hysteresis_the_thresholds_themselves_decide() -> None:
    bare = TierThresholds(hysteresis=0.0)
    assert bare.level(25.1, T.CONSERVATIVE) is T.NORMAL
    assert bare.level(24.9, T.NORMAL) is T.CONSERVATIVE
    assert bare.level(5.1, T.MINIMAL) is T.CONSERVATIVE
