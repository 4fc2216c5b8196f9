"""A step of a scenario's timeline done: a fault through the bench's fault API (docs/bench.md), or a reset
or trip of the stop line through the box's own API as its admin."""

from __future__ import annotations

from typing import Any

from bench.scenario.api import request
from bench.scenario.model import (
    BurstStep,
    CameraStep,
    EstopStep,
    FaultStep,
    SerialStep,
    Step,
    TargetStep,
)
from bench.scenario.world import CREDENTIAL_ENV, Box

TARGET_PATHS = {"clear": "faults/clear", "disconnect": "disconnect", "unplug": "unplug", "plug_in": "plug_in"}


def describe(step: Step) -> str:
    """The step in a few words, for the console and the report."""
    target = getattr(step, "target", "")
    detail = ""
    if isinstance(step, FaultStep):
        detail = " ".join(f"{k}={v}" for k, v in step.faults().items())
    elif isinstance(step, SerialStep | CameraStep):
        detail = step.action
    elif isinstance(step, BurstStep):
        detail = f"{step.parts} x {step.label}"
    return " ".join(part for part in (step.type, target, detail) if part)


def call(step: Step, box: Box) -> tuple[str, dict[str, Any]]:
    """The URL a step posts to and its body."""
    if isinstance(step, FaultStep):
        return box.control + "faults", {"target": step.target, **step.faults()}
    if isinstance(step, TargetStep):
        return box.control + TARGET_PATHS[step.type], {"target": step.target}
    if isinstance(step, SerialStep):
        return box.control + "serial", {"target": step.target, "action": step.action}
    if isinstance(step, CameraStep):
        return box.control + "camera", {"target": step.target, "action": step.action}
    if isinstance(step, BurstStep):
        return box.control + "camera/burst", {"target": step.target, "label": step.label, "parts": step.parts}
    path = "reset" if step.type == "estop_reset" else "trip"
    return f"{box.url}api/v1/estop/{path}", {} if step.reason is None else {"reason": step.reason}


def perform(step: Step, box: Box) -> dict[str, Any]:
    """Do the step; what was asked and what came back, `ok` false with the reason when it was refused."""
    url, body = call(step, box)
    done: dict[str, Any] = {"type": step.type, "what": describe(step), "url": url, "body": body}
    if isinstance(step, EstopStep) and not box.token:
        return {**done, "ok": False, "error": f"no admin credential (set {CREDENTIAL_ENV})"}
    try:
        code, answer = request(url, body, token=box.token if isinstance(step, EstopStep) else None)
    except (OSError, ValueError) as exc:  # nothing listening, or an address that is none
        return {**done, "ok": False, "error": f"no answer: {exc}"}
    done["code"] = code
    if code != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        return {**done, "ok": False, "error": f"answered {code}: {error or answer!r}"}
    return {**done, "ok": True}
