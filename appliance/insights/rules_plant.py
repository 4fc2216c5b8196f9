"""Insight rules about sync upstream, the store and its disk, the stop output and the event loop."""

from __future__ import annotations

from collections.abc import Iterator

from appliance.insights.figures import count, duration, figure, last, number, size, text, total, window
from appliance.insights.kinds import (
    DISK_FREE_CRITICAL,
    DISK_FREE_WARNING,
    ESTOP_STARTING_S,
    LOOP_LAG_CRITICAL_MS,
    LOOP_LAG_MS,
    SYNC_OFFLINE_S,
    SYNC_OLDEST_S,
    Insight,
)
from appliance.insights.memory import Check, Rule
from appliance.records import Severity
from appliance.sync.tiers import DEFAULT_RULES, LinkTier

_C, _W = Severity.CRITICAL, Severity.WARNING


def sync_offline(check: Check) -> Iterator[Insight]:
    """No upstream connection for SYNC_OFFLINE_S."""
    sync, upstream = check.section("sync"), check.section("sync", "upstream")
    tier = sync.get("tier")
    if tier in (None, "disabled") or (tier != "offline" and upstream.get("connected") is not False):
        return
    if check.now - (since := check.since("sync-offline")) >= SYNC_OFFLINE_S:
        kind = f" ({k})" if (k := text(upstream.get("kind"))) else ""
        waiting = count(total(sync.get("backlog")) or 0, "record")
        message = (
            f"The upstream{kind} has been unreachable for {duration(check.now - since)}; {waiting} wait on "
            f"the box{last(upstream.get('last_error'))}."
        )
        yield check.say("sync-offline", "", message, began=since)


def sync_behind(check: Check) -> Iterator[Insight]:
    """Records waiting longer than SYNC_OLDEST_S, or the backlog of the classes the tier sends growing."""
    tier_name = str(check.section("sync").get("tier"))
    tier = LinkTier.__members__.get(tier_name.upper())
    if tier is None or tier is LinkTier.OFFLINE:
        return  # disabled, or offline (sync_offline says so)
    sent = [p.label for p in sorted(DEFAULT_RULES[tier].classes)]  # the default policy (docs/sync.md)
    backlog = check.section("sync", "backlog")
    for label, age in check.section("sync", "oldest_s").items():
        if (waited := number(age)) is not None and waited > SYNC_OLDEST_S:
            yield _waiting(
                check, str(label), waited, number(backlog.get(label)) or 0, tier_name, label in sent
            )
    check.backlog.add(check.now, tier_name, int(sum(number(backlog.get(c)) or 0 for c in sent)))
    if growth := check.backlog.growth():
        then, now, since = growth
        message = (
            f"The sync backlog of {', '.join(sent)} records grew from {then} to {now} over "
            f"{duration(check.now - since)} on the {tier_name} tier."
        )
        yield check.say("sync-backlog", "", message, began=since)


def _waiting(check: Check, label: str, waited: float, queued: float, tier: str, sent: bool) -> Insight:
    """A class whose oldest record has waited long: a problem if the tier sends the class, else by design."""
    records = count(queued, f"{label} record")
    if not sent:
        message = f"{records} wait for a better link than {tier}, the oldest for {duration(waited)}."
        return check.say("sync-held", label, message)
    message = f"The oldest of {records} has waited {duration(waited)} although the {tier} tier sends them."
    return check.say("sync-oldest", label, message, severity=_C if label == "critical" else _W)


def disk_full(check: Check) -> Iterator[Insight]:
    """The data file system nearly full."""
    disk = check.section("disk")
    total_mb, free_mb = number(disk.get("total_mb")), number(disk.get("free_mb"))
    if total_mb and free_mb is not None and (free := free_mb / total_mb) < DISK_FREE_WARNING:
        path = f" ({p})" if (p := text(disk.get("path"))) else ""
        message = f"The data file system{path} has {size(free_mb)} free of {size(total_mb)} ({free:.1%})."
        yield check.say("disk-full", "", message, severity=_C if free < DISK_FREE_CRITICAL else _W)


def store_troubled(check: Check) -> Iterator[Insight]:
    """The store over its quota, dropping records or failing to commit."""
    store = check.section("services", "store")
    if store.get("over_quota") is True:
        used, quota = number(store.get("used_mb")), number(store.get("quota_mb"))
        figures = f" ({size(used)} of {size(quota)})" if used is not None and quota is not None else ""
        yield check.say(
            "store-over-quota", "", f"The store is over its quota{figures} with nothing left to evict."
        )
    if risen := check.rise("store/dropped", number(store.get("dropped"))):
        lost = count(risen[0], "record")
        message = f"The store dropped {lost} in {window(check.now - risen[1])}; they are lost."
        yield check.say("store-dropping", "", message, began=risen[1])
    if risen := check.rise("store/commit_errors", number(store.get("commit_errors"))):
        failed = count(risen[0], "time")
        message = f"The store failed to commit {failed} in {window(check.now - risen[1])}"
        yield check.say(
            "store-commit-errors", "", f"{message}{last(store.get('last_error'))}.", began=risen[1]
        )


def stop_output(check: Check) -> Iterator[Insight]:
    """The stop output de-energized: tripped, awaiting its first heartbeat, or cut off from its supervisor."""
    estop = check.section("estop")
    latch_file = (estop.get("supervisor") or {}).get("latch_file") or {}
    if latch_file.get("error"):
        message = (
            f"The stop output's latch is held in memory only: the disk refused it ({latch_file['error']})."
        )
        yield check.say("estop-unrecorded", "", message)
    if estop.get("state") != "tripped":
        return
    phase, reason = estop.get("phase"), text(estop.get("reason")) or "no reason given"
    if phase == "tripped":
        since = check.since("estop-tripped", number(estop.get("since")))
        message = f"The stop output has been tripped for {duration(check.now - since)}: {reason}."
        yield check.say("estop-tripped", "", message, began=since)
    elif phase != "starting":
        yield check.say("estop-supervisor", "", f"The stop output is de-energized: {reason}.")
    elif check.now - (since := check.since("estop-starting")) >= ESTOP_STARTING_S:
        waited = duration(check.now - since)
        message = f"The stop output has waited {waited} for its first healthy heartbeat: {reason}."
        yield check.say("estop-starting", "", message, began=since)


def loop_lagging(check: Check) -> Iterator[Insight]:
    """The runtime's event loop running late."""
    lag = number(check.section("runtime").get("loop_lag_ms"))
    if lag is not None and lag > LOOP_LAG_MS:
        message = (
            f"The runtime's event loop is running {figure(lag)} ms late (over {figure(LOOP_LAG_MS)} ms)."
        )
        yield check.say("loop-lag", "", message, severity=_C if lag > LOOP_LAG_CRITICAL_MS else _W)


PLANT_RULES: tuple[Rule, ...] = (
    sync_offline,
    sync_behind,
    disk_full,
    store_troubled,
    stop_output,
    loop_lagging,
)
