"""After a boot: commit the slot that came up healthy (`appliance update --commit`), or give up on a trial
whose health check failed (`appliance update --fall-back REASON`).

With RAUC's GRUB backend every boot of a slot sets its `X_TRY=1`; only `rauc status mark-good` clears it.
A slot whose try is used up is skipped at the next boot: so `--commit` runs on every boot, trial or not,
and a trial slot that hung (never reached the commit) is left behind by GRUB at the next reset, which
`--commit` on the old slot then reports as a rollback.
"""

from __future__ import annotations

import sys
from typing import Any

from appliance.update.installer import Tools
from appliance.update.rauc import RaucError, Slot, System
from appliance.update.state import COMMITTED, HEALTH, ROLLED_BACK, TRIAL, Busy, Unreadable, boot_id

DID_NOT_COME_UP = "the new slot did not come up"


def _error(message: str) -> int:
    print(f"appliance update: {message}", file=sys.stderr)
    return 1


def _booted(tools: Tools) -> tuple[System, Slot] | str:
    """(rauc's view, the booted slot), or what went wrong."""
    try:
        system = tools.rauc.status()
    except RaucError as exc:
        return f"cannot read the slots from rauc: {exc}"
    booted = system.booted_slot
    if booted is None:
        return f"rauc does not know which slot booted (it says {system.booted!r})"
    return system, booted


def _trial(tools: Tools) -> dict[str, Any] | str | None:
    """The trial record; a string if it cannot be read."""
    try:
        return tools.state.read(TRIAL)
    except Unreadable as exc:
        return str(exc)


def _not_booted_yet(trial: dict[str, Any]) -> bool:
    """Installed in this very boot: the new slot has not been tried yet, there is nothing to settle."""
    return trial.get("boot_id") is not None and trial.get("boot_id") == boot_id()


def commit(tools: Tools) -> int:
    """Mark the booted slot good; settle a trial: committed if we run it, rolled back if GRUB fell back."""
    try:
        with tools.state.lock():
            return _commit(tools)
    except Busy as exc:
        return _error(str(exc))


def _commit(tools: Tools) -> int:
    found = _booted(tools)
    if isinstance(found, str):
        return _error(found)
    _, booted = found
    try:
        marked = tools.rauc.mark("good", "booted")
    except RaucError as exc:
        return _error(str(exc))
    tools.say(f"{booted.label()}: {marked}")
    trial = _trial(tools)
    if isinstance(trial, str):
        code = _error(f"cannot read the trial record: {trial}")
    elif trial is None:
        tools.say("no update waiting for its first boot")
        code = 0
    elif _not_booted_yet(trial):
        tools.say(
            f"version {trial.get('version') or '?'} in {trial.get('slot')} waits for a reboot to be tried"
        )
        code = 0
    elif trial.get("slot") == booted.name:
        version = trial.get("version") or "?"
        tools.state.record_outcome(
            COMMITTED, f"committed version {version}", slot=booted.name, version=trial.get("version")
        )
        tools.state.clear(TRIAL)
        tools.say(f"committed version {version} in {booted.label()}")
        code = 0
    else:
        code = _roll_back_from(tools, trial, booted)
    _snapshot(tools)
    return code


def _roll_back_from(tools: Tools, trial: dict[str, Any], booted: Slot) -> int:
    """We booted another slot than the trial's: GRUB gave up on it. Mark it bad so it is not tried again."""
    slot = str(trial.get("slot") or "other")
    try:
        tools.say(f"{slot}: {tools.rauc.mark('bad', slot)}")
        problem = None
    except RaucError as exc:
        problem = str(exc)
    tools.state.record_outcome(
        ROLLED_BACK,
        f"rolled back: {DID_NOT_COME_UP}",
        reason=DID_NOT_COME_UP,
        slot=trial.get("slot"),
        version=trial.get("version"),
        running=booted.name,
    )
    tools.state.clear(TRIAL)
    tools.say(f"version {trial.get('version') or '?'} in {slot} did not come up: back on {booted.label()}")
    return _error(problem) if problem else 0


def fall_back(tools: Tools, reason: str, reboot: bool) -> int:
    """In a trial boot whose health check failed: mark the booted slot bad, record why, reboot."""
    try:
        with tools.state.lock():
            code = _fall_back(tools, reason)
    except Busy as exc:
        return _error(str(exc))
    if code != 2 or not reboot:
        return 0 if code == 2 else code
    tools.say("rebooting into the previous slot (systemctl reboot)")
    if (problem := tools.reboot()) is not None:
        return _error(f"the reboot failed: {problem}; reboot the box: sudo systemctl reboot")
    return 0


def _fall_back(tools: Tools, reason: str) -> int:
    """0: nothing to fall back from; 1: failed; 2: fell back, a reboot is due."""
    found = _booted(tools)
    if isinstance(found, str):
        return _error(found)
    _, booted = found
    trial = _trial(tools)
    if isinstance(trial, str):
        return _error(f"cannot read the trial record: {trial}")
    if trial is None or _not_booted_yet(trial) or trial.get("slot") != booted.name:
        tools.say(
            f"not a trial boot ({booted.label()} is running, no update waits on it): nothing to fall back to"
        )
        return 0
    try:
        tools.say(f"{booted.label()}: {tools.rauc.mark('bad', 'booted')}")
    except RaucError as exc:
        return _error(str(exc))
    checks = _failed_checks(tools)
    tools.state.record_outcome(
        ROLLED_BACK,
        f"rolled back: {reason}",
        reason=reason,
        slot=booted.name,
        version=trial.get("version"),
        running=trial.get("from_slot"),
        **({"failed_checks": checks} if checks else {}),
    )
    tools.state.clear(TRIAL)
    tools.say(f"version {trial.get('version') or '?'} in {booted.label()} rolled back: {reason}")
    _snapshot(tools)
    return 2


def _failed_checks(tools: Tools) -> list[str]:
    """What this boot's health check found wrong, if it saved its result in the state directory."""
    try:
        health = tools.state.read(HEALTH)
    except Unreadable:
        return []
    if not health or health.get("boot_id") != boot_id() or health.get("healthy"):
        return []
    return [f"{c.get('name')}: {c.get('detail')}" for c in health.get("checks", []) if not c.get("ok")]


def _snapshot(tools: Tools) -> None:
    try:
        tools.snapshot(tools.rauc.status())
    except RaucError as exc:
        tools.say(f"(rauc status failed: {exc})")
