"""Link tiers and the default policy of what each tier sends, how compressed, in what batches, how often."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from appliance.records import Priority

__all__ = ["DEFAULT_RULES", "LinkTier", "Priority", "TierRule", "TierThresholds"]

KIB = 1024
MIB = 1024 * KIB


class LinkTier(enum.IntEnum):
    """How good the uplink is; ordered so that a larger tier is a better link."""

    OFFLINE = 0
    MINIMAL = 1
    CONSERVATIVE = 2
    NORMAL = 3
    UNMETERED = 4  # NORMAL bandwidth on a link nobody pays for by the byte

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class TierRule:
    """One row of the policy: the classes a tier sends and how it packs them."""

    classes: frozenset[Priority]
    zstd_level: int
    batch_records: int
    batch_bytes: int  # a cap on the encoded size of one batch
    interval_s: float  # how long a non-critical class may wait before its backlog goes; critical never waits


# records, bytes: "small" is small on the wire; a minimal link's batches carry many compact readings
_SMALL, _MEDIUM, _LARGE = (10000, 64 * KIB), (20000, 512 * KIB), (50000, 2 * MIB)

# the table of docs/sync.md. Offline keeps the minimal row's packing, so whatever reads it sees sane numbers.
DEFAULT_RULES: Mapping[LinkTier, TierRule] = MappingProxyType(
    {
        LinkTier.OFFLINE: TierRule(frozenset(), 19, *_SMALL, interval_s=300.0),
        LinkTier.MINIMAL: TierRule(frozenset({Priority.CRITICAL}), 19, *_SMALL, interval_s=300.0),
        LinkTier.CONSERVATIVE: TierRule(
            frozenset({Priority.CRITICAL, Priority.IMPORTANT}), 12, *_MEDIUM, interval_s=60.0
        ),
        LinkTier.NORMAL: TierRule(
            frozenset({Priority.CRITICAL, Priority.IMPORTANT, Priority.NORMAL}), 6, *_LARGE, interval_s=15.0
        ),
        LinkTier.UNMETERED: TierRule(frozenset(Priority), 6, *_LARGE, interval_s=15.0),
    }
)


@dataclass(frozen=True, slots=True)
class TierThresholds:
    """Where the smoothed goodput puts the link, and how sticky the tier is."""

    minimal_below_mbit: float = 5.0
    normal_above_mbit: float = 25.0
    hysteresis: float = 0.2  # a fraction of the threshold to pass beyond, in the direction of the move
    hold_s: float = 10.0  # a new tier must be wanted this long before it applies (offline applies at once)
    probe_interval_s: float = 60.0  # probe after this long without a goodput sample

    def __post_init__(self) -> None:
        if not 0 < self.minimal_below_mbit < self.normal_above_mbit:
            raise ValueError("need 0 < minimal_below_mbit < normal_above_mbit")
        if not 0 <= self.hysteresis < 1:
            raise ValueError("hysteresis is a fraction in [0, 1)")
        if self.hold_s < 0 or self.probe_interval_s <= 0:
            raise ValueError("hold_s must be >= 0 and probe_interval_s > 0")

    def level(self, mbit: float, current: LinkTier) -> LinkTier:
        """MINIMAL, CONSERVATIVE or NORMAL for a goodput, with hysteresis around the `current` level:
        a threshold the link is below must be passed by the hysteresis fraction to go up, and one it is
        above must be undercut by it to go down."""
        level = LinkTier.MINIMAL
        for threshold in (self.minimal_below_mbit, self.normal_above_mbit):
            if current > level:  # above this threshold already
                passed = mbit >= threshold * (1 - self.hysteresis)
            else:
                passed = mbit > threshold * (1 + self.hysteresis)
            if not passed:
                break
            level = LinkTier(level + 1)
        return level
