"""Each expectation judged on what was seen: the samples of the status, the box's events, the steps done. A
verdict has the measured value beside the bound, and says why when it did not hold.

Moments are seconds on the run's timeline (`t`, 0 when the box was ready). The box stamps its events with
its own clock; they are moved onto the timeline by the offset between that clock and ours, measured on
every sample (the box's `time` against our clock when the answer came)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.scenario.model import (
    Expectation,
    InsightRaised,
    InsightRaisedAndCleared,
    NeverTripped,
    QcDecides,
    RestoredWithin,
    SensorsOk,
    StaleThenRecovered,
    TrippedWithin,
)


@dataclass
class Verdict:
    name: str
    type: str
    held: bool
    measured: Any
    bound: Any
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Seen:
    """What a run saw: good samples (answered), events with their `t`, steps done by name (their `t`)."""

    samples: list[dict[str, Any]]
    events: list[dict[str, Any]]
    steps: dict[str, dict[str, Any]]


def seen(samples: list[dict[str, Any]], events: list[dict[str, Any]], steps: list[dict[str, Any]]) -> Seen:
    good = [s for s in samples if "error" not in s]
    timed = [s for s in good if s.get("box_time") is not None]
    if timed:  # our clock at t = 0, and ours less the box's
        wall0 = statistics.median(s["wall"] - s["t"] for s in timed)
        offset = statistics.median(s["wall"] - s["box_time"] for s in timed)
        for event in events:
            if isinstance(event.get("ts"), int | float):
                event["t"] = round(event["ts"] + offset - wall0, 3)
    return Seen(good, events, {s["name"]: s for s in steps if s.get("name")})


def matches(sensor: str, names: list[str]) -> bool:
    """A sensor id is named by itself or by its device."""
    return any(sensor == n or sensor.startswith(n + ".") for n in names)


def _step_t(seen: Seen, name: str) -> float | None:
    step = seen.steps.get(name)
    return None if step is None or not step.get("ok") else float(step["t"])


def _after(seen: Seen, name: str) -> tuple[float | None, str]:
    t = _step_t(seen, name)
    if t is None:
        step = seen.steps.get(name)
        return None, f"step {name!r} " + ("was not done" if step is None else f"failed: {step.get('error')}")
    return t, ""


def never_tripped(c: NeverTripped, seen: Seen) -> Verdict:
    trips = [e for e in seen.events if e.get("kind") == "estop.trip"]
    counted = [s["estop"]["trips"] for s in seen.samples if s.get("estop")]
    down = [s["t"] for s in seen.samples if (s.get("estop") or {}).get("state") == "tripped"]
    n = max(len(trips), (counted[-1] - counted[0]) if counted else 0, 1 if down else 0)
    why = ""
    if n:
        first = trips[0] if trips else None
        why = f"tripped: {first['message']} at {first.get('t')} s" if first else f"tripped at {down[:1]} s"
    return Verdict(c.name or c.type, c.type, n == 0, n, 0, why)


def first_trip_after(seen: Seen, t0: float) -> float | None:
    """When the line first tripped at or after t0: the earliest trip event, or sample seeing it down."""
    slack = 0.25  # the clocks' offset is measured to within a request's time
    times = [e["t"] for e in seen.events if e.get("kind") == "estop.trip" and e.get("t", -1) >= t0 - slack]
    before = [s for s in seen.samples if s["t"] <= t0 and s.get("estop")]
    trips0 = before[-1]["estop"]["trips"] if before else None
    for s in seen.samples:
        estop = s.get("estop") or {}
        if s["t"] >= t0 and (
            estop.get("state") == "tripped" or (trips0 is not None and estop["trips"] > trips0)
        ):
            times.append(s["t"])
            break
    return max(t0, min(times)) if times else None


def within(name: str, kind: str, took: float, bound: float) -> Verdict:
    return Verdict(name, kind, took <= bound, took, bound, "" if took <= bound else "too late")


def tripped_within(c: TrippedWithin, seen: Seen) -> Verdict:
    name = c.name or c.type
    t0, why = _after(seen, c.after)
    if t0 is None:
        return Verdict(name, c.type, False, None, c.within_s, why)
    t = first_trip_after(seen, t0)
    if t is None:
        return Verdict(name, c.type, False, None, c.within_s, f"the line never tripped after {c.after!r}")
    took = round(t - t0, 3)
    return Verdict(
        name, c.type, took <= c.within_s, took, c.within_s, "" if took <= c.within_s else "too late"
    )


def restored_within(c: RestoredWithin, seen: Seen) -> Verdict:
    name = c.name or c.type
    t0, why = _after(seen, c.after)
    if t0 is None:
        return Verdict(name, c.type, False, None, c.within_s, why)
    ok = [s["t"] for s in seen.samples if s["t"] >= t0 and (s.get("estop") or {}).get("state") == "ok"]
    if not ok:
        last: dict[str, Any] = next((s["estop"] for s in reversed(seen.samples) if s.get("estop")), {})
        return Verdict(name, c.type, False, None, c.within_s, f"still tripped: {last.get('reason')}")
    took = round(ok[0] - t0, 3)
    return Verdict(
        name, c.type, took <= c.within_s, took, c.within_s, "" if took <= c.within_s else "too late"
    )


def stale_then_recovered(c: StaleThenRecovered, seen: Seen) -> Verdict:
    name, bound = c.name or c.type, {"stale_s": c.stale_within_s, "recovered_s": c.recover_within_s}
    t_bad, why = _after(seen, c.after)
    t_back, why_back = _after(seen, c.recovered)
    if t_bad is None or t_back is None:
        return Verdict(name, c.type, False, None, bound, why or why_back)

    def ours(s: dict[str, Any]) -> dict[str, str]:
        return {k: v["quality"] for k, v in s["sensors"].items() if matches(k, c.sensors)}

    if not any(ours(s) for s in seen.samples):
        return Verdict(name, c.type, False, None, bound, f"no sensor of {c.sensors} in the status")
    bad = next((s for s in seen.samples if s["t"] >= t_bad and set(ours(s).values()) - {"ok"}), None)
    if bad is None:
        return Verdict(name, c.type, False, None, bound, f"{c.sensors} never lost their quality")
    back = next(
        (
            s
            for s in seen.samples
            if s["t"] >= max(t_back, bad["t"]) and ours(s) and all(q == "ok" for q in ours(s).values())
        ),
        None,
    )
    measured = {
        "stale_s": round(bad["t"] - t_bad, 3),
        "quality": sorted(set(ours(bad).values()) - {"ok"}),
        "recovered_s": None if back is None else round(back["t"] - t_back, 3),
    }
    if back is None:
        last = ours(seen.samples[-1])
        still = sorted(k for k, q in last.items() if q != "ok")
        return Verdict(name, c.type, False, measured, bound, f"not recovered by the end: {still}")
    late = [k for k in ("stale_s", "recovered_s") if measured[k] > bound[k]]
    return Verdict(name, c.type, not late, measured, bound, f"too late: {', '.join(late)}" if late else "")


def sensors_ok(c: SensorsOk, seen: Seen) -> Verdict:
    bad = [
        (s["t"], k, v["quality"])
        for s in seen.samples
        for k, v in s["sensors"].items()
        if v["quality"] != "ok" and not matches(k, c.ignore)
    ]
    why = "" if not bad else f"{bad[0][1]} was {bad[0][2]} at {bad[0][0]} s ({len(bad)} bad looks)"
    return Verdict(c.name or c.type, c.type, not bad, len(bad), 0, why)


def lists(sample: dict[str, Any], insight: str) -> bool:
    """The sample lists the insight, by its id or its kind (`bus-garbage` for `bus-garbage:line-a`)."""
    return any(i == insight or str(i).startswith(insight + ":") for i in sample["insights"])


def insight_raised(c: InsightRaised, seen: Seen) -> Verdict:
    name = c.name or c.type
    t0, why = _after(seen, c.after)
    if t0 is None:
        return Verdict(name, c.type, False, None, c.within_s, why)
    raised = next((s for s in seen.samples if s["t"] >= t0 and lists(s, c.insight)), None)
    if raised is None:
        return Verdict(name, c.type, False, None, c.within_s, f"{c.insight!r} was never listed")
    return within(name, c.type, round(raised["t"] - t0, 3), c.within_s)


def insight_raised_and_cleared(c: InsightRaisedAndCleared, seen: Seen) -> Verdict:
    name = c.name or c.type
    bound = {"raised_s": c.raised_within_s, "cleared_s": c.cleared_within_s}
    t_from, why = _after(seen, c.after) if c.after else (0.0, "")
    t_clear, why_clear = _after(seen, c.cleared_by) if c.cleared_by else (0.0, "")
    if t_from is None or t_clear is None:
        return Verdict(name, c.type, False, None, bound, why or why_clear)

    def listed(s: dict[str, Any]) -> bool:
        return lists(s, c.insight)

    raised = next((s for s in seen.samples if s["t"] >= t_from and listed(s)), None)
    if raised is None:
        return Verdict(name, c.type, False, None, bound, f"{c.insight!r} was never listed")
    t_cleared_from = max(raised["t"], t_clear)
    cleared = next((s for s in seen.samples if s["t"] > t_cleared_from and not listed(s)), None)
    measured = {
        "raised_s": round(raised["t"] - t_from, 3),
        "cleared_s": None if cleared is None else round(cleared["t"] - t_clear, 3),
    }
    if cleared is None:
        return Verdict(name, c.type, False, measured, bound, f"{c.insight!r} still listed at the end")
    late = [k for k in ("raised_s", "cleared_s") if bound[k] is not None and measured[k] > bound[k]]
    return Verdict(name, c.type, not late, measured, bound, f"too late: {', '.join(late)}" if late else "")


def qc_decides(c: QcDecides, seen: Seen) -> Verdict:
    name, bound = c.name or c.type, {"frames": c.min_frames, "p99_ms": c.max_p99_ms}
    qc = [s["qc"] for s in seen.samples if s.get("qc")]
    if not qc:
        return Verdict(name, c.type, False, None, bound, "no QC section in the status")
    measured = {"frames": qc[-1]["frames"] - qc[0]["frames"], "p99_ms": qc[-1]["p99_ms"]}
    why = []
    if measured["frames"] < c.min_frames:
        why.append("too few frames")
    if c.max_p99_ms is not None and (measured["p99_ms"] is None or measured["p99_ms"] > c.max_p99_ms):
        why.append("p99 latency over the bound")
    return Verdict(name, c.type, not why, measured, bound, ", ".join(why))


JUDGES: dict[type[Any], Callable[[Any, Seen], Verdict]] = {
    NeverTripped: never_tripped,
    TrippedWithin: tripped_within,
    RestoredWithin: restored_within,
    StaleThenRecovered: stale_then_recovered,
    SensorsOk: sensors_ok,
    InsightRaisedAndCleared: insight_raised_and_cleared,
    InsightRaised: insight_raised,
    QcDecides: qc_decides,
}


def judge(expectations: list[Expectation], seen: Seen) -> list[Verdict]:
    if not seen.samples:
        return [
            Verdict(c.name or c.type, c.type, False, None, None, "the box never answered")
            for c in expectations
        ]
    return [JUDGES[type(c)](c, seen) for c in expectations]
