"""`appliance health`: the check a boot must pass before its slot is committed (docs/updates.md).

Healthy means, all at once:
- systemd: the runtime's and the supervisor's units are active (`systemctl is-active`, read unit by unit:
  its exit code only says whether *any* of them is);
- status API: `GET /api/v1/status` answers at the configured `[http] listen` address (on loopback when it
  listens on every address; with HTTPS, the certificate is not verified on loopback, where it is the box's
  own self-signed one);
- store: the status's `services.store` is running with its schema read (the database is open);
- safety supervisor: with `[safety]` configured, the runtime is connected to it (`estop.phase` known) and
  it can record its latch. A tripped line is healthy: the reboot of an update trips and latches it.

It retries until all pass or the timeout ends, printing what it waits for; the verdict names each check.
A unit systemd has given up on (`failed`: its restarts hit the start limit) ends the wait at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.update.state import boot_id, write_json

if TYPE_CHECKING:  # the config models load pydantic: only `appliance health` itself needs them
    from appliance.config.models import ApplianceConfig

UNITS = ("appliance.service", "appliance-safety.service")
SYSTEMCTL = "/usr/bin/systemctl"
DEFAULT_TIMEOUT_S = 120.0
RETRY_S = 1.0
REQUEST_TIMEOUT_S = 5.0
SAY_EVERY_S = 10.0  # a progress line at least this often while nothing changes
GAVE_UP = " (systemd gave up restarting it: not waiting)"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    final: bool = False  # failed for good: waiting will not change it


@dataclass(frozen=True, slots=True)
class Target:
    """What to check: where the status API answers, and what the box is made of."""

    url: str  # of the status API
    verify: bool  # the HTTPS certificate (not on loopback)
    safety: bool  # [safety] configured
    units: tuple[str, ...] = UNITS
    systemctl: str = SYSTEMCTL


def target(config: ApplianceConfig, units: tuple[str, ...] = UNITS, systemctl: str = SYSTEMCTL) -> Target:
    host, _, port = config.http.listen.rpartition(":")
    host = host.strip("[]")
    loopback = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{loopback}]" if ":" in loopback else loopback
    scheme = "http" if config.http.tls == "off" else "https"
    url = f"{scheme}://{shown}:{port}/api/v1/status"
    from appliance.web.access import is_loopback_host  # here: `appliance safety` must not load the web stack

    return Target(url, not is_loopback_host(loopback), config.safety is not None, units, systemctl)


def check_once(where: Target) -> list[Check]:
    status, problem = read_status(where)
    return [
        systemd(where),
        Check("status API", status is not None, problem or f"answered at {where.url}"),
        store(status),
        supervisor(status, where.safety),
    ]


def systemd(where: Target) -> Check:
    try:
        done = subprocess.run(
            [where.systemctl, "is-active", *where.units],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("systemd", False, f"{where.systemctl} is-active: {exc}")
    states = done.stdout.split()
    if len(states) != len(where.units):
        said = (done.stderr or done.stdout).strip().replace("\n", "; ")
        return Check("systemd", False, f"systemctl is-active exited with {done.returncode}: {said}")
    down = [
        f"{unit} is {state}" + (GAVE_UP if state == "failed" else "")
        for unit, state in zip(where.units, states, strict=True)
        if state != "active"
    ]
    # A unit restarting is "activating"; "failed" once its restarts hit the start limit.
    final = "failed" in states
    return Check("systemd", not down, "; ".join(down) or f"{', '.join(where.units)} active", final)


def read_status(where: Target) -> tuple[dict[str, Any] | None, str | None]:
    """The status document, or None and why not."""
    import ssl  # here: the command line is built for every command, `appliance safety` too
    import urllib.error
    import urllib.request

    context = ssl.create_default_context()
    if not where.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(  # no proxy: the box asks itself
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(where.url, timeout=REQUEST_TIMEOUT_S) as answer:
            status = json.load(answer)
    except urllib.error.HTTPError as exc:
        with exc:
            said = exc.read(500).decode(errors="replace")
        hint = ' (with [http] status_login = "always" the check cannot read it)' if exc.code == 401 else ""
        return None, f"HTTP {exc.code} from {where.url}: {said.strip()}{hint}"
    except urllib.error.URLError as exc:
        return None, f"no answer from {where.url}: {exc.reason}"
    except (OSError, TimeoutError) as exc:
        return None, f"no answer from {where.url}: {exc}"
    except ValueError as exc:
        return None, f"{where.url} did not answer JSON: {exc}"
    if not isinstance(status, dict):
        return None, f"{where.url} did not answer a status document"
    return status, None


def _section(status: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        status = status.get(key) if isinstance(status, dict) else None
    return status


def store(status: dict[str, Any] | None) -> Check:
    if status is None:
        return Check("store", False, "not known: the status API did not answer")
    section = _section(status, "services", "store")
    if not isinstance(section, dict):
        return Check("store", False, "the status has no services.store")
    if section.get("running") and section.get("schema") is not None:
        committed = section.get("rows_committed")
        return Check(
            "store", True, f"open at {section.get('path')} (schema {section['schema']}, {committed} readings)"
        )
    error = section.get("last_error")
    return Check("store", False, "not open" + (f": {error}" if error else " (still starting?)"))


def supervisor(status: dict[str, Any] | None, configured: bool) -> Check:
    if not configured:
        return Check("safety supervisor", True, "no [safety] in the config: nothing to supervise")
    if status is None:
        return Check("safety supervisor", False, "not known: the status API did not answer")
    estop = status.get("estop")
    if not isinstance(estop, dict):
        return Check(
            "safety supervisor", False, "the status has no estop section, yet [safety] is configured"
        )
    if estop.get("phase") in (None, "unknown"):
        return Check("safety supervisor", False, f"the runtime is not connected to it: {estop.get('reason')}")
    who = estop.get("supervisor")
    who = who if isinstance(who, dict) else {}
    latch = who.get("latch_file")
    latch = latch if isinstance(latch, dict) else {}
    if latch.get("recorded") is False:
        return Check("safety supervisor", False, f"it cannot record its latch: {latch.get('error')}")
    line = "energized" if estop.get("state") == "ok" else f"de-energized ({estop.get('reason')})"
    return Check(
        "safety supervisor", True, f"connected (pid {who.get('pid')}, {estop.get('phase')}), line {line}"
    )


def wait(where: Target, timeout_s: float, say: Any = None) -> tuple[list[Check], float]:
    """Check until healthy or `timeout_s` has passed; (the last checks, seconds waited)."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    began = time.monotonic()
    said, said_at = "", began
    while True:
        checks = check_once(where)
        waited = time.monotonic() - began
        if all(c.ok for c in checks) or waited >= timeout_s or any(c.final for c in checks):
            return checks, waited
        now = ", ".join(f"{c.name} ({c.detail})" for c in checks if not c.ok)
        if now != said or time.monotonic() - said_at >= SAY_EVERY_S:
            say(f"health: {waited:.0f} s of {timeout_s:.0f}: waiting for {now}")
            said, said_at = now, time.monotonic()
        time.sleep(min(RETRY_S, max(timeout_s - waited, 0.0)))


def verdict(checks: list[Check], waited: float) -> list[str]:
    healthy = all(c.ok for c in checks)
    head = f"healthy (after {waited:.1f} s)" if healthy else f"NOT healthy after {waited:.0f} s"
    width = max(len(c.name) for c in checks)
    return [head + ":"] + [
        f"  {'ok' if c.ok else 'FAILED':<6}  {c.name:<{width}}  {c.detail}" for c in checks
    ]


def run(where: Target, timeout_s: float, as_json: bool, save: Path | None) -> int:
    checks, waited = wait(where, timeout_s)
    healthy = all(c.ok for c in checks)
    result = {
        "healthy": healthy,
        "checks": [asdict(c) for c in checks],
        "failed": [c.name for c in checks if not c.ok],
        "waited_s": round(waited, 1),
        "url": where.url,
        "time": time.time(),
        "boot_id": boot_id(),
    }
    if save is not None:
        try:
            write_json(save, result)
        except OSError as exc:
            print(f"appliance health: cannot save the result to {save}: {exc}", file=sys.stderr)
    print(json.dumps(result, indent=2) if as_json else "\n".join(verdict(checks, waited)), flush=True)
    return 0 if healthy else 1
