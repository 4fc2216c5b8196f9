"""The box watched from outside: its status every half second reduced to what the verdicts and the plots
need, and its events as they are recorded."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from bench.scenario.api import request
from bench.scenario.world import Box

PERIOD_S = 0.5
EVENTS_PAGE = 500  # GET /api/v1/events answers at most this many at once


def number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def rss_mb(pid: object) -> float | None:
    """The resident memory of a local process in MB, None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reduce(status: dict[str, Any], local: bool) -> dict[str, Any]:
    """One status document as a sample: the stop line, each sensor, QC, sync, the devices' polls, the
    insights, the loop's lag and (on this machine) the runtime's memory."""
    estop, qc, sync = status.get("estop"), status.get("qc"), status.get("sync") or {}
    services = status.get("services") or {}
    runtime = status.get("runtime") or {}
    return {
        "box_time": number(status.get("time")),
        "estop": None
        if not estop
        else {k: estop.get(k) for k in ("state", "phase", "reason", "causes", "trips", "resets")},
        "sensors": {
            s["id"]: {"quality": s.get("quality"), "value": number(s.get("value"))}
            for s in status.get("sensors") or []
        },
        "qc": None
        if not qc
        else {
            "frames": qc.get("frames"),
            "fps": qc.get("fps"),
            "defects": qc.get("defects"),
            "p50_ms": (qc.get("latency_ms") or {}).get("p50"),
            "p99_ms": (qc.get("latency_ms") or {}).get("p99"),
        },
        "sync": {k: sync.get(k) for k in ("tier", "backlog", "oldest_s", "records_acked")},
        "polls": {
            name: section["polls"]
            for name, section in services.items()
            if isinstance(section, dict) and "polls" in section
        },
        "insights": [i.get("id") for i in status.get("insights") or []],
        "loop_lag_ms": number(runtime.get("loop_lag_ms")),
        "rss_mb": rss_mb(runtime.get("pid")) if local else None,
    }


class Sampler:
    """Samples the box from `t0` (time.monotonic()) on, in a thread of its own, until stopped."""

    def __init__(self, box: Box, t0: float) -> None:
        self.box, self.t0 = box, t0
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.since = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sample()  # the state at the end

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.sample()
            next_at += PERIOD_S
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def sample(self) -> dict[str, Any]:
        t = time.monotonic() - self.t0
        wall = time.time()
        try:
            code, status = request(self.box.url + "api/v1/status", token=self.box.token)
            if code != 200 or not isinstance(status, dict):
                raise OSError(f"status answered {code}")
            sample = {"t": round(t, 3), "wall": wall, **reduce(status, self.box.local)}
            self._events()
        except OSError as exc:  # the box did not answer: a gap in the timeline, said as such
            sample = {"t": round(t, 3), "wall": wall, "error": str(exc)}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # an answer of another shape
            sample = {"t": round(t, 3), "wall": wall, "error": f"unreadable status: {exc!r}"}
        with self.lock:
            self.samples.append(sample)
        return sample

    def _events(self) -> None:
        while True:
            code, events = request(f"{self.box.url}api/v1/events?since={self.since}", token=self.box.token)
            if code != 200 or not isinstance(events, list) or not events:
                return
            with self.lock:
                self.events.extend(events)
            self.since = max(int(e["id"]) for e in events)
            if len(events) < EVENTS_PAGE:
                return

    def skip_old_events(self) -> None:
        """Events recorded before the scenario began are not its own."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            self._events()
        with self.lock:
            self.events.clear()

    def latest(self) -> dict[str, Any] | None:
        with self.lock:
            return next((s for s in reversed(self.samples) if "error" not in s), None)
