"""A stand-in for `systemctl` (systemd 252) where systemd is not PID 1, for the two verbs the updater uses.

Run as a script with STANDIN_SYSTEMCTL_STATE: a JSON file {"units": {UNIT: STATE}, "calls": [...]}.

- `systemctl is-active UNIT...` prints each unit's state on a line of its own, in the order asked
  (`active`, `inactive`, `failed`, `activating`, ...; `inactive` for a unit systemd does not know), and
  exits 0 if *any* of them is active, else 3 (systemctl(1), is-active: "Returns an exit code 0 if at least
  one is active, or non-zero otherwise"; 3 is EXIT_PROGRAM_NOT_RUNNING).
- `systemctl reboot` queues the reboot job and returns 0 at once; here it is only recorded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    path = Path(os.environ["STANDIN_SYSTEMCTL_STATE"])
    state = json.loads(path.read_text())
    state.setdefault("calls", []).append(argv)
    path.write_text(json.dumps(state))
    if argv[:1] == ["is-active"]:
        states = [state.get("units", {}).get(unit, "inactive") for unit in argv[1:]]
        print("\n".join(states))
        return 0 if "active" in states else 3
    if argv == ["reboot"]:
        return 0
    print(f"Unknown command verb {argv[0] if argv else ''}.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
