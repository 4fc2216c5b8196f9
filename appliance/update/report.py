"""`appliance update --status [--json]`: the slots as RAUC reports them, which one runs and which boots
next, the update in trial if any, the last update's outcome and the install under way."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from appliance.update.installer import Tools
from appliance.update.rauc import RaucError
from appliance.update.state import OUTCOME, PROGRESS, TRIAL
from appliance.update.upload import installing


def when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if isinstance(ts, int | float) else "?"


def gather(tools: Tools) -> dict[str, Any]:
    doc: dict[str, Any] = {"rauc": None, "error": None}
    try:
        system = tools.rauc.status()
        doc["rauc"] = system.to_dict()
        if os.geteuid() == 0:
            tools.snapshot(system)  # the page shows it; its reader may not ask RAUC
    except RaucError as exc:
        doc["error"] = f"cannot read the slots from rauc: {exc}"
    except OSError as exc:  # shown all the same; the page keeps the slots it had
        print(f"(cannot record the slots in {tools.state.path}: {exc})", file=sys.stderr)
    doc["trial"] = tools.state.read_or_note(TRIAL)
    doc["outcome"] = tools.state.read_or_note(OUTCOME)
    progress = tools.state.read_or_note(PROGRESS)
    if progress is not None and "state" in progress:
        progress["running"] = installing(progress)
    doc["progress"] = progress
    return doc


def show(tools: Tools, as_json: bool) -> int:
    doc = gather(tools)
    print(json.dumps(doc, indent=2) if as_json else "\n".join(render(doc)))
    return 1 if doc["error"] else 0


def render(doc: dict[str, Any]) -> list[str]:
    lines = []
    if rauc := doc.get("rauc"):
        slots = {s["name"]: s for s in rauc["slots"]}
        booted, primary = slots.get(rauc["booted"] or ""), slots.get(rauc["primary"] or "")
        unknown = f"? (rauc says {rauc['booted_bootname']})"
        lines.append(f"booted:  {_slot(booted) if booted else unknown}")
        lines.append(f"primary: {_slot(primary) if primary else '-'} (boots next)")
        lines.append("slots:")
        for s in rauc["slots"]:
            marks = f"{s['bootname'] or '-':<3} {s['state'] or '?':<9} {s['boot_status'] or '-':<5}"
            installed = f", installed {s['installed']}" if s["installed"] else ""
            lines.append(f"  {s['name']:<10} {marks} version {s['version'] or '-'}{installed}")
    if doc.get("error"):
        lines.append(f"error: {doc['error']}")
    if trial := doc.get("trial"):
        lines.append("update in trial: " + (trial["error"] if "error" in trial else _trial(trial)))
    outcome = doc.get("outcome")
    lines.append(
        f"last update: {outcome.get('message') or outcome.get('error')} ({when(outcome.get('time'))})"
        if outcome
        else "last update: none recorded"
    )
    progress = doc.get("progress")
    if progress and progress.get("running"):
        lines.append(f"installing now: {progress.get('percent')}% {progress.get('step')}")
    elif progress and progress.get("state") == "installing":
        lines.append(f"an install was interrupted at {progress.get('percent')}% {progress.get('step')}")
    return lines


def _trial(trial: dict[str, Any]) -> str:
    return (
        f"version {trial.get('version') or '?'} in {trial.get('slot')} ({trial.get('bootname')}), installed "
        f"{when(trial.get('installed'))} from {trial.get('from_slot')}; committed once it boots and passes "
        "its health check"
    )


def _slot(slot: dict[str, Any]) -> str:
    return f"{slot['name']} ({slot['bootname']}), version {slot['version'] or 'unknown (as flashed)'}"
