"""A stand-in for `rauc` 1.8 on a box with two root slots and RAUC's GRUB backend, for what a test host
cannot do for real: `rauc install` and `rauc status` need `rauc-service` on D-Bus, real slots and a grubenv.

Run as a script (`python standin_rauc.py ARGS`, through the wrapper the tests write), with
RAUC_STANDIN_STATE: a JSON file holding the box (the slots, their status file entries, the grubenv
variables, the booted slot's bootname as `rauc.slot=` gives it, and every call made), and
RAUC_STANDIN_KEYRING: the CA that /etc/rauc/system.conf's [keyring] names on a box.

Where its behaviour comes from:
- `info` is the real /usr/bin/rauc (`rauc info --keyring KEYRING ...`): signatures are really checked.
- `install` checks the bundle with the real `rauc info` first, as the service does before it touches a
  slot, and prints what rauc 1.8's client prints for the service's progress (src/main.c:
  on_installer_changed, `%3d%% %s` per Progress change, the Operation `installing`/`idle`, `LastError:
  MESSAGE`, then `Installing `%s` succeeded` or, on standard error, `Installing `%s` failed`, exit 0 or 1).
  The step texts are those of a real 1.x install log (rauc/rauc issue #696) and, for a refused signature,
  issue #687 (` 40% Verifying signature failed.`). The compatible check's place among the steps is not
  documented: here it fails the "Checking manifest contents" step, with 1.8's message (src/install.c:
  `Compatible mismatch: Expected '%s' but bundle manifest has '%s'`). The slot it writes is marked bad
  first, then gets its status entry (bundle.*, sha256, size, installed.*, status=ok) and is made primary
  (`ORDER=X ...`, `X_OK=1`, `X_TRY=0`), as install.c and bootloaders/grub.c do.
- `status --detailed --output-format=json|json-pretty` prints src/main.c's r_status_formatter_json of
  1.8 (json-glib, compact: no spaces): compatible, variant, booted (the bootname), boot_primary (the first
  slot of ORDER with X_OK=1 and X_TRY=0, grub.c r_grub_get_primary), and per slot class, device, type,
  bootname, state (booted/inactive), parent, mountpoint, boot_status (good iff in ORDER, X_OK=1 and
  X_TRY=0: grub.c r_grub_get_state) and slot_status {bundle {compatible, version}, checksum {sha256,
  size}, installed {timestamp, count}, activated {timestamp, count}, status}.
- `status mark-good|mark-bad|mark-active booted|other|SLOT` sets X_OK=1 X_TRY=0, X_OK=0 X_TRY=0, or the
  primary (grub.c r_grub_set_state / r_grub_set_primary) and says `rauc mark: marked slot %s as good`,
  `... as bad`, `activated slot %s` as a GLib message on standard error (mark.c; main.c `rauc mark: %s`);
  `other` with no other slot fails with mark.c's `No other bootable slot of the same class found`.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REAL_RAUC = "/usr/bin/rauc"
SUCCESS_STEPS = [
    (0, "Installing"),
    (0, "Determining slot states"),
    (20, "Determining slot states done."),
    (20, "Checking bundle"),
    (20, "Verifying signature"),
    (40, "Verifying signature done."),
    (40, "Checking bundle done."),
    (40, "Checking manifest contents"),
    (60, "Checking manifest contents done."),
    (60, "Determining target install group"),
    (80, "Determining target install group done."),
    (80, "Updating slots"),
    (80, "Checking slot {slot}"),
    (90, "Checking slot {slot} done."),
    (90, "Copying image to {slot}"),
    (100, "Copying image to {slot} done."),
    (100, "Updating slots done."),
    (100, "Installing done."),
]


def message(text: str) -> None:
    """A GLib g_message, as rauc prints it on standard error."""
    now = datetime.datetime.now()
    print(f"rauc-Message: {now:%H:%M:%S}.{now.microsecond // 1000:03d}: {text}", file=sys.stderr)


class Box:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text())

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    @property
    def env(self) -> dict[str, str]:
        grubenv: dict[str, str] = self.data["grubenv"]
        return grubenv

    def slots(self) -> dict[str, dict[str, Any]]:
        slots: dict[str, dict[str, Any]] = self.data["slots"]
        return slots

    def order(self) -> list[str]:
        return self.env.get("ORDER", "").split()

    def good(self, name: str) -> bool:
        bootname = self.slots()[name]["bootname"]
        return (
            bootname in self.order()
            and self.env.get(f"{bootname}_OK") == "1"
            and self.env.get(f"{bootname}_TRY") == "0"
        )

    def primary(self) -> str | None:
        for bootname in self.order():
            for name, slot in self.slots().items():
                if slot["bootname"] == bootname and self.good(name):
                    return name
        return None

    def booted(self) -> str | None:
        return next((n for n, s in self.slots().items() if s["bootname"] == self.data["booted"]), None)

    def other(self) -> str | None:
        booted = self.booted()
        return next((n for n in sorted(self.slots()) if n != booted), None)

    def set_state(self, name: str, good: bool) -> None:
        bootname = self.slots()[name]["bootname"]
        self.env[f"{bootname}_OK"] = "1" if good else "0"
        self.env[f"{bootname}_TRY"] = "0"

    def set_primary(self, name: str) -> None:
        bootname = self.slots()[name]["bootname"]
        self.env["ORDER"] = " ".join([bootname, *(b for b in self.order() if b != bootname)])
        self.env[f"{bootname}_OK"] = "1"
        self.env[f"{bootname}_TRY"] = "0"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def real_info(bundle: str, *extra: str) -> subprocess.CompletedProcess[str]:
    keyring = os.environ["RAUC_STANDIN_KEYRING"]
    return subprocess.run(
        [REAL_RAUC, "info", f"--keyring={keyring}", *extra, bundle],
        capture_output=True,
        text=True,
        check=False,
    )


def refusal(stderr: str) -> str:
    lines = [
        line for line in stderr.splitlines() if line.strip() and not line.startswith(("rauc-", "(rauc:"))
    ]
    return lines[-1] if lines else stderr.strip()


def install(box: Box, bundle: str) -> int:
    bundle = str(Path(bundle).resolve())
    if not Path(bundle).exists():
        print(f"No such file: {bundle}", file=sys.stderr)
        return 1
    print("installing", flush=True)
    checked = real_info(bundle, "--output-format=json")
    target = box.other()
    assert target is not None
    if checked.returncode != 0:
        for percent, step in SUCCESS_STEPS[:5]:
            print(f"{percent:3d}% {step}", flush=True)
        print(" 40% Verifying signature failed.\n 40% Checking bundle failed.\n100% Installing failed.")
        print(f"LastError: {refusal(checked.stderr)}\nidle", flush=True)
        print(f"Installing `{bundle}` failed", file=sys.stderr)
        return 1
    manifest = json.loads(checked.stdout.strip().splitlines()[-1])
    if manifest["compatible"] != box.data["compatible"]:
        for percent, step in SUCCESS_STEPS[:8]:
            print(f"{percent:3d}% {step}", flush=True)
        print(" 60% Checking manifest contents failed.\n100% Installing failed.")
        expected, got = box.data["compatible"], manifest["compatible"]
        print(f"LastError: Compatible mismatch: Expected '{expected}' but bundle manifest has '{got}'\nidle")
        print(f"Installing `{bundle}` failed", file=sys.stderr)
        return 1
    for percent, step in SUCCESS_STEPS:
        print(f"{percent:3d}% {step.format(slot=target)}", flush=True)
        if step.startswith("Copying image") and not step.endswith("done."):
            box.set_state(target, good=False)  # "Marking target slot %s as non-bootable..."
            box.save()
    image = next(iter(manifest["images"][0].values()))
    slot = box.slots()[target]
    old = slot.get("status", {})
    slot["status"] = {
        "bundle.compatible": manifest["compatible"],
        "bundle.version": manifest.get("version"),
        "status": "ok",
        "sha256": image["checksum"],
        "size": image["size"],
        "installed.timestamp": utc_now(),
        "installed.count": int(old.get("installed.count", 0)) + 1,
        "activated.timestamp": utc_now(),
        "activated.count": int(old.get("activated.count", 0)) + 1,
    }
    box.set_primary(target)
    box.save()
    print("idle", flush=True)
    print(f"Installing `{bundle}` succeeded", flush=True)
    return 0


def slot_json(box: Box, name: str, detailed: bool) -> dict[str, Any]:
    slot = box.slots()[name]
    fields: dict[str, Any] = {
        "class": name.split(".")[0],
        "device": slot["device"],
        "type": "ext4",
        "bootname": slot["bootname"],
        "state": "booted" if name == box.booted() else "inactive",
        "parent": None,
        "mountpoint": "/" if name == box.booted() else None,
        "boot_status": "good" if box.good(name) else "bad",
    }
    if detailed:
        status = slot.get("status", {})
        bundle = {"compatible": status.get("bundle.compatible")}
        for key in ("version", "description", "build"):
            if status.get(f"bundle.{key}"):
                bundle[key] = status[f"bundle.{key}"]
        detail: dict[str, Any] = {"bundle": bundle}
        if status.get("sha256"):
            detail["checksum"] = {"sha256": status["sha256"], "size": status["size"]}
        for key in ("installed", "activated"):
            if status.get(f"{key}.timestamp"):
                detail[key] = {"timestamp": status[f"{key}.timestamp"], "count": status[f"{key}.count"]}
        if status.get("status"):
            detail["status"] = status["status"]
        fields["slot_status"] = detail
    return {name: fields}


def status(box: Box, args: list[str]) -> int:
    formats = [a.split("=", 1)[1] for a in args if a.startswith("--output-format=")]
    detailed = "--detailed" in args
    rest = [a for a in args if not a.startswith("--")]
    if rest:
        return mark(box, rest[0], rest[1] if len(rest) > 1 else "booted")
    shown = formats[-1] if formats else "readable"
    doc = {
        "compatible": box.data["compatible"],
        "variant": None,
        "booted": box.data["booted"],
        "boot_primary": box.primary(),
        "slots": [slot_json(box, name, detailed) for name in box.slots()],
    }
    if shown == "json":
        print(json.dumps(doc, separators=(",", ":")))
    elif shown == "json-pretty":
        print(json.dumps(doc, indent=2, separators=(",", " : ")))
    elif shown == "readable":
        print(f"=== System Info ===\nCompatible:  {doc['compatible']}\nBooted from: {box.booted()}")
    else:
        print(f"Unknown output format: '{shown}'", file=sys.stderr)
        return 1
    return 0


def mark(box: Box, how: str, which: str) -> int:
    verbs = {"mark-good": "good", "mark-bad": "bad", "mark-active": "active"}
    if how not in verbs:
        message(f"unknown subcommand {how}")
        return 1
    name = box.booted() if which == "booted" else box.other() if which == "other" else which
    if which == "other" and name is None:
        message("rauc mark: No other bootable slot of the same class found")
        return 1
    if name not in box.slots():
        if "." not in which:
            message(f"rauc mark: Invalid slot name format: '{which}'")
        else:
            cls, _, index = which.partition(".")
            message(f"rauc mark: No slot with class {cls} and name {index} found")
        return 1
    state = verbs[how]
    if state == "active":
        box.set_primary(name)
        said = f"activated slot {name}"
    else:
        box.set_state(name, good=state == "good")
        said = f"marked slot {name} as {state}"
    box.save()
    message(f"rauc mark: {said}")
    return 0


def main(argv: list[str]) -> int:
    box = Box(Path(os.environ["RAUC_STANDIN_STATE"]))
    box.data.setdefault("calls", []).append(argv)
    box.save()
    if argv == ["--version"]:
        print("rauc 1.8")
        return 0
    command = next((a for a in argv if not a.startswith("-")), None)
    rest = argv[argv.index(command) + 1 :] if command else []
    if command == "info":
        checked = real_info(rest[-1], *rest[:-1])
        sys.stdout.write(checked.stdout)
        sys.stderr.write(checked.stderr)
        return checked.returncode
    if command == "install" and rest:
        return install(box, rest[-1])
    if command == "status":
        return status(box, rest)
    message(f"Invalid command '{command}' given")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
