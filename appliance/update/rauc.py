"""The `rauc` command (Debian's rauc 1.8 CLI, talking to `rauc-service` over D-Bus), and what its output
means.

What it prints, as 1.8 does (src/main.c):
- `rauc info --output-format=json BUNDLE`: verifies the signature against the system keyring, then one
  line of JSON: {"compatible", "version", "description", "build", "hooks", "images"}; a refusal exits 1
  with the reason on standard error (`signature verification failed: Verify error: ...`).
- `rauc install BUNDLE`: the service's steps on standard output as they happen, `%3d%% STEP` (` 20%
  Verifying signature`, ` 40% Verifying signature done.`), its operation (`installing`, `idle`), and
  `LastError: MESSAGE` when it failed; then `Installing `BUNDLE` succeeded` (exit 0) or, on standard
  error, `Installing `BUNDLE` failed` (exit 1). The signature is checked before any slot is touched.
- `rauc status --detailed --output-format=json`: {"compatible", "variant", "booted" (the booted slot's
  bootname, from rauc.slot= on the kernel command line), "boot_primary" (the slot name the bootloader
  tries first), "slots": [{NAME: {"class", "device", "type", "bootname", "state" (booted, active,
  inactive), "parent", "mountpoint", "boot_status" (good, bad), "slot_status": {"bundle": {"compatible",
  "version", "description", "build"}, "checksum": {"sha256", "size"}, "installed": {"timestamp",
  "count"}, "activated": {...}, "status"}}}]}.
- `rauc status mark-good|mark-bad|mark-active booted|other|SLOT`: `rauc mark: marked slot rootfs.1 as
  good` as a GLib message on standard error; exit 1 with the reason on failure.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RAUC = "/usr/bin/rauc"
QUICK_TIMEOUT_S = 120.0  # info, status, mark: the service answers in seconds; an install has no bound
PROGRESS_LINE = re.compile(r"^\s*(\d{1,3})% (.*)$")
NOISE = re.compile(r"^(rauc-Message: |\(rauc:\d+\): rauc-(WARNING|DEBUG|Message)|\*\*\s*$)")


class RaucError(Exception):
    """rauc refused or failed; the message says what it said."""


@dataclass(frozen=True, slots=True)
class Bundle:
    compatible: str
    version: str | None
    description: str | None = None
    build: str | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    slot_class: str | None
    bootname: str | None
    device: str | None
    state: str | None  # booted, active, inactive
    boot_status: str | None  # good, bad; None for a slot the bootloader does not choose
    version: str | None = None
    compatible: str | None = None
    installed: str | None = None  # when RAUC wrote it, as RAUC says it (UTC, ISO 8601)
    activated: str | None = None
    status: str | None = None  # the last install's result, as RAUC recorded it

    def label(self) -> str:
        return f"{self.name} ({self.bootname})" if self.bootname else self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class": self.slot_class,
            "bootname": self.bootname,
            "device": self.device,
            "state": self.state,
            "boot_status": self.boot_status,
            "version": self.version,
            "compatible": self.compatible,
            "installed": self.installed,
            "activated": self.activated,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class System:
    compatible: str | None
    variant: str | None
    booted: str | None  # as RAUC says: the bootname (or device) of the booted slot
    primary: str | None  # the slot name the bootloader tries first
    slots: list[Slot] = field(default_factory=list)

    @property
    def booted_slot(self) -> Slot | None:
        """The slot we run from: found by device, then by bootname, as `rauc status` does."""
        if self.booted is None:
            return None
        by_device = next((s for s in self.slots if s.device == self.booted), None)
        return by_device or next((s for s in self.slots if s.bootname == self.booted), None)

    def slot(self, name: str | None) -> Slot | None:
        return next((s for s in self.slots if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        booted = self.booted_slot
        return {
            "compatible": self.compatible,
            "variant": self.variant,
            "booted": booted.name if booted else None,
            "booted_bootname": self.booted,
            "primary": self.primary,
            "slots": [s.to_dict() for s in sorted(self.slots, key=lambda s: s.name)],
        }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_status(text: str) -> System:
    """`rauc status --detailed --output-format=json` of rauc 1.8; ValueError if it is not that."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("slots"), list):
        raise ValueError("expected an object with a list of slots")
    slots = []
    for entry in data["slots"]:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"expected {{SLOT: {{...}}}} in slots, got {str(entry)[:80]}")
        ((name, fields),) = entry.items()
        if not isinstance(fields, dict):
            raise ValueError(f"slot {name}: expected an object")
        status = _object(fields.get("slot_status"))
        bundle, installed = _object(status.get("bundle")), _object(status.get("installed"))
        activated = _object(status.get("activated"))
        slots.append(
            Slot(
                name=name,
                slot_class=_text(fields.get("class")),
                bootname=_text(fields.get("bootname")),
                device=_text(fields.get("device")),
                state=_text(fields.get("state")),
                boot_status=_text(fields.get("boot_status")),
                version=_text(bundle.get("version")),
                compatible=_text(bundle.get("compatible")),
                installed=_text(installed.get("timestamp")),
                activated=_text(activated.get("timestamp")),
                status=_text(status.get("status")),
            )
        )
    return System(
        compatible=_text(data.get("compatible")),
        variant=_text(data.get("variant")),
        booted=_text(data.get("booted")),
        primary=_text(data.get("boot_primary")),
        slots=slots,
    )


def said(output: str) -> str:
    """What rauc said that matters: its output without GLib's informational lines (`rauc-Message: ...`)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    kept = [line for line in lines if not NOISE.match(line)]
    return "; ".join(kept or lines[-3:])


class Rauc:
    """Runs the `rauc` at `binary`."""

    def __init__(self, binary: str | Path = RAUC) -> None:
        self.binary = str(binary)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.binary, *args], capture_output=True, text=True, timeout=QUICK_TIMEOUT_S, check=False
            )
        except FileNotFoundError:
            raise RaucError(f"{self.binary}: not found (is RAUC installed? Debian: rauc)") from None
        except subprocess.TimeoutExpired:
            raise RaucError(f"rauc {args[0]} did not answer within {QUICK_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise RaucError(f"{self.binary}: {exc.strerror or exc}") from None

    def info(self, bundle: Path) -> Bundle:
        """The bundle's manifest, its signature verified against the system's keyring."""
        done = self._run("info", "--output-format=json", str(bundle))
        if done.returncode != 0:
            raise RaucError(said(done.stderr + done.stdout) or f"rauc info exited with {done.returncode}")
        try:
            data = json.loads(done.stdout.strip().splitlines()[-1])
            compatible = data["compatible"]
        except (ValueError, IndexError, KeyError, TypeError):
            raise RaucError(f"rauc info: not the JSON rauc 1.8 prints: {done.stdout[:200]!r}") from None
        return Bundle(
            str(compatible),
            _text(data.get("version")),
            _text(data.get("description")),
            _text(data.get("build")),
        )

    def install(self, bundle: Path, progress: Callable[[int, str], None]) -> None:
        """Install `bundle` into the other slot; `progress(percent, step)` for each step RAUC reports."""
        try:
            proc = subprocess.Popen(
                [self.binary, "install", str(bundle)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            raise RaucError(f"{self.binary}: {exc.strerror or exc}") from None
        last_error, other = None, []
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                line = line.rstrip("\n")
                if match := PROGRESS_LINE.match(line):
                    progress(min(int(match.group(1)), 100), match.group(2).strip())
                elif line.startswith("LastError: "):
                    last_error = line.removeprefix("LastError: ").strip()
                elif line.strip() and not line.startswith("Installing `"):
                    other.append(line)
        code = proc.wait()
        if code != 0:
            raise RaucError(last_error or said("\n".join(other)) or f"rauc install exited with {code}")

    def status(self) -> System:
        done = self._run("status", "--detailed", "--output-format=json")
        if done.returncode != 0:
            raise RaucError(said(done.stderr + done.stdout) or f"rauc status exited with {done.returncode}")
        try:
            return parse_status(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
        except ValueError as exc:
            raise RaucError(
                f"rauc status: not the JSON rauc 1.8 prints ({exc}): {done.stdout[:200]!r}"
            ) from None

    def mark(self, state: str, slot: str) -> str:
        """`rauc status mark-STATE SLOT` (good, bad, active; booted, other or a slot name): what it said."""
        done = self._run("status", f"mark-{state}", slot)
        message = done.stderr + done.stdout
        found = re.findall(r"rauc mark: (.*)", message)
        if done.returncode != 0:
            raise RaucError(
                f"rauc status mark-{state} {slot}: "
                + (found[-1].strip() if found else said(message) or f"exit {done.returncode}")
            )
        return found[-1].strip() if found else f"marked {slot} {state}"
