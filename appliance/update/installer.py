"""`appliance update FILE` (and the page's uploads, through `request`): check the bundle, install it into
the other slot with RAUC, record the trial, reboot into it.

RAUC verifies the bundle's signature against the keyring of /etc/rauc/system.conf before it writes
anything; a refused bundle leaves the slots as they were, and the refusal is what the outcome says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.update.rauc import Rauc, RaucError, Slot, System
from appliance.update.state import (
    FAILED,
    INSTALLED,
    SLOTS,
    TRIAL,
    Busy,
    Progress,
    StateDir,
    Unreadable,
    boot_id,
)

SYSTEMCTL = "/usr/bin/systemctl"


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass
class Tools:
    """What an updater works with; each part replaceable for tests (docs/updates.md)."""

    rauc: Rauc
    state: StateDir
    systemctl: str = SYSTEMCTL
    say: Callable[[str], None] = field(default=_say)

    def reboot(self) -> str | None:
        """`systemctl reboot`: None once asked, else why it could not be."""
        try:
            done = subprocess.run(
                [self.systemctl, "reboot"], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{self.systemctl} reboot: {exc}"
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()
            return f"{self.systemctl} reboot exited with {done.returncode}: {said}"
        return None

    def snapshot(self, system: System) -> None:
        """slots.json: what the runtime shows, since it may not ask RAUC itself."""
        self.state.write(SLOTS, {**system.to_dict(), "boot_id": boot_id()})


def not_root(command: str) -> str | None:
    """Why this process may not update the box, or None when it runs as root."""
    if os.geteuid() == 0:
        return None
    return f"appliance update must run as root: sudo {command}"


def install(tools: Tools, bundle: Path, reboot: bool, shown_as: str | None = None) -> int:
    """Install `bundle`: 0 installed (and rebooting unless told not to), 1 refused or failed."""
    try:
        with tools.state.lock():
            code = _install(tools, bundle, shown_as or str(bundle))
    except Busy as exc:
        print(f"appliance update: {exc}; try again once it is done", file=sys.stderr)
        return 1
    return reboot_into_trial(tools) if code == 0 and reboot else code


def reboot_into_trial(tools: Tools) -> int:
    tools.say("rebooting into the new slot to try it (systemctl reboot)")
    if (problem := tools.reboot()) is not None:
        print(f"appliance update: installed, but the reboot failed: {problem}", file=sys.stderr)
        print("reboot the box to try the update: sudo systemctl reboot", file=sys.stderr)
        return 1
    return 0


def _install(tools: Tools, bundle: Path, shown_as: str) -> int:
    progress = Progress(tools.state, shown_as)

    def fail(reason: str, **fields: Any) -> int:
        progress.end(FAILED, reason)
        tools.state.record_outcome(FAILED, f"failed: {reason}", bundle=shown_as, reason=reason, **fields)
        print(f"appliance update: {reason}", file=sys.stderr)
        print("nothing was installed; the box keeps running what it runs", file=sys.stderr)
        return 1

    tools.say(f"checking {shown_as}")
    try:
        info = tools.rauc.info(bundle)
    except RaucError as exc:
        return fail(f"rauc refused the bundle: {exc}")
    try:
        before = tools.rauc.status()
    except RaucError as exc:
        return fail(f"cannot read the slots from rauc: {exc}", version=info.version)
    booted = before.booted_slot
    if booted is None:
        return fail(f"rauc does not know which slot booted (it says {before.booted!r})", version=info.version)
    try:
        trial = tools.state.read(TRIAL)
    except Unreadable as exc:
        return fail(f"cannot read the trial record: {exc}", version=info.version)
    if trial is not None and trial.get("slot") == booted.name and trial.get("boot_id") != boot_id():
        return fail(
            f"this boot is the trial of version {trial.get('version')} in {booted.label()}, not yet "
            "committed; an install now would overwrite the slot to fall back to. Wait for its health check "
            "(appliance update --status), then install",
            version=info.version,
        )
    tools.say(f"bundle: version {info.version or '?'} for {info.compatible}; running {booted.label()}")
    progress.step(0, "installing", version=info.version)

    def step(percent: int, text: str) -> None:
        tools.say(f"{percent:3d}% {text}")
        progress.step(percent, text)

    try:
        tools.rauc.install(bundle, step)
    except RaucError as exc:
        return fail(f"rauc install failed: {exc}", version=info.version)
    try:
        after = tools.rauc.status()
    except RaucError as exc:
        after = None
        tools.say(f"(installed, but rauc status failed: {exc})")
    target = _target(after or before, booted.name, booted.slot_class)
    record = {
        "slot": target.name if target else None,
        "bootname": target.bootname if target else None,
        "version": info.version,
        "compatible": info.compatible,
        "bundle": shown_as,
        "installed": progress.record["updated"],
        "boot_id": boot_id(),
        "from_slot": booted.name,
        "from_bootname": booted.bootname,
        "from_version": booted.version,
    }
    tools.state.write(TRIAL, record)
    where = target.label() if target else "the other slot"
    message = f"installed version {info.version or '?'} in {where}; it is tried at the next boot"
    tools.state.record_outcome(INSTALLED, message, **{k: record[k] for k in ("slot", "version", "from_slot")})
    if after is not None:
        tools.snapshot(after)
    progress.end(INSTALLED)
    tools.say(message)
    return 0


def _target(system: System, booted: str, slot_class: str | None) -> Slot | None:
    """The slot RAUC installed into: the primary one now, if not the booted one; else the booted one's
    sibling."""
    primary = system.slot(system.primary)
    if primary is not None and primary.name != booted:
        return primary
    return next((s for s in system.slots if s.slot_class == slot_class and s.name != booted), None)
