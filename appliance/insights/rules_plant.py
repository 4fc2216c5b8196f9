"""Insight rules about sync upstream, the store and its disk, the stop output and the event loop."""

from __future__ import annotations

from collections.abc import Iterator

from appliance.insights.figures import count, duration, figure, last, number, size, window
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
from appliance.status.store import StoreStatus
from appliance.status.sync import SyncStatus
from appliance.sync.tiers import DEFAULT_RULES, LinkTier

_C, _W = Severity.CRITICAL, Severity.WARNING


def sync_offline(check: Check) -> Iterator[Insight]:
    """No upstream connection for SYNC_OFFLINE_S."""
    if not isinstance(sync := check.status.sync, SyncStatus):
        return  # disabled
    upstream = sync.upstream
    if sync.tier != "offline" and (upstream is None or upstream.connected):
        return
    if check.now - (since := check.since("sync-offline")) >= SYNC_OFFLINE_S:
        kind = f" ({upstream.kind})" if upstream is not None and upstream.kind else ""
        waiting = count(sum(sync.backlog.values()), "record")
        error = last(upstream.last_error if upstream is not None else None)
        message = (
            f"The upstream{kind} has been unreachable for {duration(check.now - since)}; {waiting} wait on "
            f"the box{error}."
        )
        yield check.say("sync-offline", "", message, began=since)


def sync_plain(check: Check) -> Iterator[Insight]:
    """An upstream reached without TLS: on this box (info: nothing crosses a network) or, marked
    `insecure = true`, across one (warning)."""
    if not isinstance(sync := check.status.sync, SyncStatus) or (upstream := sync.upstream) is None:
        return
    if upstream.secure:
        return
    where = "on this box" if upstream.loopback else "across the network (insecure = true)"
    said = f"The upstream ({upstream.kind}) is reached without TLS, {where}"
    message = f"{said}: records and credentials go in clear."
    yield check.say("sync-plain", "", message, severity=Severity.INFO if upstream.loopback else None)


def sync_behind(check: Check) -> Iterator[Insight]:
    """Records waiting longer than SYNC_OLDEST_S, or the backlog of the classes the tier sends growing."""
    if not isinstance(sync := check.status.sync, SyncStatus):
        return  # disabled
    tier = LinkTier.__members__.get(sync.tier.upper())
    if tier is None or tier is LinkTier.OFFLINE:
        return  # offline: sync_offline says so
    sent = [p.label for p in sorted(DEFAULT_RULES[tier].classes)]  # the default policy (docs/sync.md)
    for label, age in sync.oldest_s.items():
        if (waited := number(age)) is not None and waited > SYNC_OLDEST_S:
            yield _waiting(check, label, waited, sync.backlog.get(label, 0), sync.tier, label in sent)
    check.backlog.add(check.now, sync.tier, sum(sync.backlog.get(c, 0) for c in sent))
    if growth := check.backlog.growth():
        then, now, since = growth
        message = (
            f"The sync backlog of {', '.join(sent)} records grew from {then} to {now} over "
            f"{duration(check.now - since)} on the {sync.tier} tier."
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
    if (disk := check.status.disk) is None or not disk.total_mb:
        return
    if (free := disk.free_mb / disk.total_mb) < DISK_FREE_WARNING:
        path = f" ({disk.path})" if disk.path else ""
        message = (
            f"The data file system{path} has {size(disk.free_mb)} free of {size(disk.total_mb)} ({free:.1%})."
        )
        yield check.say("disk-full", "", message, severity=_C if free < DISK_FREE_CRITICAL else _W)


def store_troubled(check: Check) -> Iterator[Insight]:
    """The store over its quota, dropping records or failing to commit."""
    if not isinstance(store := check.status.services.get("store"), StoreStatus):
        return
    if store.over_quota:
        yield check.say(
            "store-over-quota",
            "",
            f"The store is over its quota ({size(store.used_mb)} of {size(store.quota_mb)}) with nothing "
            "left to evict.",
        )
    if risen := check.rise("store/dropped", store.dropped):
        lost = count(risen[0], "record")
        message = f"The store dropped {lost} in {window(check.now - risen[1])}; they are lost."
        yield check.say("store-dropping", "", message, began=risen[1])
    if risen := check.rise("store/commit_errors", store.commit_errors):
        failed = count(risen[0], "time")
        message = f"The store failed to commit {failed} in {window(check.now - risen[1])}"
        yield check.say("store-commit-errors", "", f"{message}{last(store.last_error)}.", began=risen[1])


def stop_output(check: Check) -> Iterator[Insight]:
    """The stop output de-energized: tripped, awaiting its first heartbeat, or cut off from its supervisor."""
    if (estop := check.status.estop) is None:
        return
    latch_file = estop.supervisor.latch_file
    if latch_file is not None and latch_file.error:
        message = f"The stop output's latch is held in memory only: the disk refused it ({latch_file.error})."
        yield check.say("estop-unrecorded", "", message)
    if estop.state != "tripped":
        return
    reason = estop.reason or "no reason given"
    if estop.phase == "tripped":
        since = check.since("estop-tripped", estop.since)
        message = f"The stop output has been tripped for {duration(check.now - since)}: {reason}."
        yield check.say("estop-tripped", "", message, began=since)
    elif estop.phase != "starting":
        yield check.say("estop-supervisor", "", f"The stop output is de-energized: {reason}.")
    elif check.now - (since := check.since("estop-starting")) >= ESTOP_STARTING_S:
        waited = duration(check.now - since)
        message = f"The stop output has waited {waited} for its first healthy heartbeat: {reason}."
        yield check.say("estop-starting", "", message, began=since)


def loop_lagging(check: Check) -> Iterator[Insight]:
    """The runtime's event loop running late."""
    lag = check.status.runtime.loop_lag_ms
    if lag > LOOP_LAG_MS:
        message = (
            f"The runtime's event loop is running {figure(lag)} ms late (over {figure(LOOP_LAG_MS)} ms)."
        )
        yield check.say("loop-lag", "", message, severity=_C if lag > LOOP_LAG_CRITICAL_MS else _W)


PLANT_RULES: tuple[Rule, ...] = (
    sync_offline,
    sync_plain,
    sync_behind,
    disk_full,
    store_troubled,
    stop_output,
    loop_lagging,
)
