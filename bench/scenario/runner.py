"""`bench scenario NAME`: the box started (or reached), made ready, its timeline played while it is sampled,
the expectations judged, REPORT_DIR/report.json written. Exit 0 if every expectation held, 1 if one did
not (or a step failed, or the box never got ready), 2 for a scenario file or a command line in error."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from appliance.config.loader import ConfigError
from bench.scenario.api import request
from bench.scenario.checks import Verdict, judge, seen
from bench.scenario.model import EstopStep, Scenario, find_scenario, load_scenario, shipped
from bench.scenario.sampler import Sampler, reduce
from bench.scenario.steps import perform
from bench.scenario.world import CREDENTIAL_ENV, Box, fresh_box, target_box

READY_S = 60.0  # from the first answer to a box whose line is up, QC deciding and every sensor ok
PROGRESS_S = 5.0
INVARIANTS = ("never_tripped", "sensors_ok")  # judged while it runs too: the failures so far


def list_scenarios(out: TextIO) -> int:
    for name in shipped():
        try:
            text = load_scenario(find_scenario(name)).description.splitlines()[0]
        except ConfigError as exc:
            text = f"(in error: {exc.lines[0]})"
        print(f"{name:20} {text}", file=out)
    return 0


def not_ready(status: dict[str, Any], settle_s: float) -> str:
    """Why a box cannot start a scenario yet; "" when it can."""
    sample = reduce(status, local=False)
    if (uptime := status.get("uptime_s") or 0.0) < settle_s:
        return f"settling: up {uptime:.0f} s of {settle_s:g}"
    if sample["estop"] and sample["estop"]["state"] != "ok":
        return f"stop line {sample['estop']['state']}: {sample['estop']['reason']}"
    if sample["qc"] is not None and not sample["qc"]["frames"]:
        return "QC has decided on no frame yet"
    bad = sorted(k for k, v in sample["sensors"].items() if v["quality"] != "ok")
    return f"sensors not ok: {', '.join(bad)}" if bad else ""


def wait_ready(box: Box, settle_s: float, timeout: float = READY_S) -> str:
    deadline, why = time.monotonic() + timeout + settle_s, "no answer"
    while time.monotonic() < deadline:
        try:
            code, status = request(box.url + "api/v1/status", token=box.token)
            why = (
                not_ready(status, settle_s)
                if code == 200 and isinstance(status, dict)
                else f"status answered {code}"
            )
        except OSError as exc:
            why = f"no answer: {exc}"
        if not why:
            return ""
        time.sleep(0.25)
    return why


@contextlib.contextmanager
def the_box(scenario: Scenario, target: str | None, control: str, report: Path) -> Iterator[Box]:
    if target is None:
        with fresh_box(scenario.world, report) as box:
            yield box
    else:
        yield target_box(target, control)


def play(scenario: Scenario, box: Box, scale: float, out: TextIO) -> tuple[Sampler, list[dict[str, Any]]]:
    """The timeline: each step at its moment while the sampler watches; progress on `out`."""
    sampler = Sampler(box, time.monotonic())
    sampler.skip_old_events()
    sampler.start()
    plan = sorted(scenario.steps, key=lambda s: s.at_s)
    duration, done, next_progress = scenario.duration_s * scale, [], 0.0
    invariants = [c for c in scenario.expect if c.type in INVARIANTS]
    while (t := time.monotonic() - sampler.t0) < duration:
        while plan and plan[0].at_s * scale <= t:
            step = plan.pop(0)
            record = {"name": step.name, "at_s": round(step.at_s * scale, 3), **perform(step, box)}
            record["t"] = round(time.monotonic() - sampler.t0, 3)
            done.append(record)
            outcome = "ok" if record["ok"] else f"FAILED: {record['error']}"
            print(
                f"[{record['t']:6.1f}/{duration:.0f} s] step {step.name or ''} {record['what']}: {outcome}",
                file=out,
                flush=True,
            )
        if t >= next_progress:
            next_progress += PROGRESS_S
            with sampler.lock:
                looked = seen(list(sampler.samples), [dict(e) for e in sampler.events], done)
            broken = judge(invariants, looked) if looked.samples else []
            failures = sum(not d["ok"] for d in done) + sum(not v.held for v in broken)
            print(
                f"[{t:6.1f}/{duration:.0f} s] {progress(sampler.latest())}; failures so far: {failures}",
                file=out,
                flush=True,
            )
        time.sleep(min(0.05, max(0.0, duration - t)))
    sampler.stop()
    return sampler, done


def progress(sample: dict[str, Any] | None) -> str:
    if sample is None:
        return "no answer yet"
    parts = []
    if sample["estop"]:
        parts.append(f"line {sample['estop']['state']}")
    qualities = [v["quality"] for v in sample["sensors"].values()]
    parts.append(f"{qualities.count('ok')}/{len(qualities)} sensors ok")
    if sample["qc"]:
        parts.append(f"qc {sample['qc']['frames']} frames")
    if sample["insights"]:
        parts.append(f"insights {', '.join(map(str, sample['insights']))}")
    return ", ".join(parts)


def run_scenario(
    name: str, target: str | None, control: str, report: Path | None, quick: bool, out: TextIO = sys.stdout
) -> int:
    try:
        path = find_scenario(name)
        scenario = load_scenario(path)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    resets = any(isinstance(s, EstopStep) for s in scenario.steps)
    if target is not None and resets and not target_box(target, control).token:
        print(f"bench scenario: {path.stem} resets the stop line: set {CREDENTIAL_ENV}", file=sys.stderr)
        return 2
    report = report or Path(f"scenario-{path.stem}")
    report.mkdir(parents=True, exist_ok=True)
    scale = scenario.quick.scale if quick else 1.0
    print(f"scenario {path.stem}: {scenario.description.splitlines()[0]}", file=out, flush=True)
    result: dict[str, Any] = {
        "scenario": path.stem,
        "description": scenario.description,
        "quick": quick,
        "scale": scale,
        "duration_s": scenario.duration_s * scale,
        "target": target,
    }
    samples: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    verdicts: list[Verdict]
    try:
        with the_box(scenario, target, control, report / "box") as box:
            result["box"] = box.url
            print(f"box at {box.url}; waiting until it is ready", file=out, flush=True)
            if why := wait_ready(box, scenario.settle_s):
                raise RuntimeError(f"the box did not get ready within {READY_S:g} s: {why}")
            sampler, done = play(scenario, box, scale, out)
            samples, events = sampler.samples, sampler.events
        verdicts = judge(scenario.expect, seen(samples, events, done))
    except (RuntimeError, OSError) as exc:
        verdicts = [Verdict("ready", "ready", False, None, None, str(exc))]
    verdicts += [
        Verdict(f"step {d['name'] or d['what']}", "step", False, None, None, d["error"])
        for d in done
        if not d["ok"]
    ]
    held = all(v.held for v in verdicts)
    result.update(
        passed=held, verdicts=[v.as_dict() for v in verdicts], steps=done, events=events, samples=samples
    )
    (report / "report.json").write_text(json.dumps(result, indent=1))
    for v in verdicts:
        mark = "held  " if v.held else "FAILED"
        why = f"  ({v.why})" if v.why else ""
        print(f"{mark} {v.name}: measured {v.measured} bound {v.bound}{why}", file=out)
    print(
        f"scenario {path.stem}: {'passed' if held else 'FAILED'}; report {report / 'report.json'}", file=out
    )
    return 0 if held else 1
