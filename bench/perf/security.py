"""The `security` section of `bench perf`: the box under hostile clients and a hostile field device.

- login_attempts_per_min_max: wrong passwords the box took for checking (answered 401, not refused 429
  unchecked) in the busiest minute of a flood of wrong logins from 16 connections at once spread over 16
  loopback addresses, for 65 s (20 s with `--quick`, which therefore sees one minute's budget at most);
- rss_growth_mb_under_abuse: the runtime's resident memory at its highest during the whole hostile-client
  run (that flood, 48 MB bodies declared and chunked, slow and silent connections, a flood of sockets, live
  streams hogged, forwarded-address rotation, foreign Host names) over its level just before, sampled
  every 50 ms;
- healthy_poll_rate_with_babbler: from bench/perf/babbler.py.

The runtime is `appliance run` on the whole bench world (camera, QC, field devices), as in the runtime
section, so the abuse competes with real work.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.harness import hostile
from bench.harness.login_flood import wrong_logins
from bench.harness.watched import Run
from bench.perf import babbler

FLOOD_S, QUICK_FLOOD_S = 65.0, 20.0  # a full run sees the budget of a whole minute renewed once
FLOOD_CONCURRENCY, FLOOD_ADDRESSES = 16, 16
BODIES, QUICK_BODIES = 10, 4  # 48 MB bodies, half declared by Content-Length, half chunked
BODY_BYTES = 48 * 1024 * 1024
SAMPLE_S = 0.05
SETTLE_S = 5.0  # after the world came up: its first batches, feature windows, caches


def run(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        abuse = hostile_clients(Path(folder), quick)
    bus = babbler.healthy_poll_rate_with_babbler(quick)
    figures = {
        "login_attempts_per_min_max": {
            "measured": abuse["login"]["attempts"],
            "baseline": "wrong logins sent",
            "unit": "checks/min",
        },
        "rss_growth_mb_under_abuse": {
            "measured": abuse["rss_samples"],
            "baseline": f"{abuse['rss_mb_before']} MB before",
            "unit": "MB",
        },
        "healthy_poll_rate_with_babbler": bus["figures"]["healthy_poll_rate_with_babbler"],
    }
    return {
        "login_attempts_per_min_max": abuse["login"]["most_checked_per_min"],
        "rss_growth_mb_under_abuse": abuse["rss_growth_mb"],
        "healthy_poll_rate_with_babbler": bus["healthy_poll_rate_with_babbler"],
        "figures": figures,
        "detail": {"abuse": abuse, "babbler": bus},
    }


def hostile_clients(folder: Path, quick: bool) -> dict[str, Any]:
    """Every hostile client of bench/harness/hostile.py and the login flood against one runtime, its memory
    sampled throughout."""
    box = Run(folder, broker=False)
    try:
        if not box.wait_until(lambda s: bool((s.get("qc") or {}).get("frames")), timeout=90):
            raise RuntimeError(
                "the bench world did not come up: " + (folder / "appliance.log").read_text()[-2000:]
            )
        time.sleep(SETTLE_S)
        url = box.status_url.removesuffix("api/v1/status")
        with _sampled(box.proc.pid) as samples:
            time.sleep(1.0)
            before = statistics.median(samples)
            seen: dict[str, Any] = {}
            attacks = [
                threading.Thread(target=_bodies, args=(url, QUICK_BODIES if quick else BODIES, seen)),
                threading.Thread(target=_slow, args=(url, seen)),
                threading.Thread(target=_streams_and_names, args=(url, seen)),
            ]
            for attack in attacks:
                attack.start()
            flood = wrong_logins(url, QUICK_FLOOD_S if quick else FLOOD_S, FLOOD_CONCURRENCY, FLOOD_ADDRESSES)
            for attack in attacks:
                attack.join(60)
            peak = max(samples)
            after = samples[-1]
        status = box.status() or {}
    finally:
        box.stop()
    return {
        "rss_mb_before": round(before, 1),
        "rss_mb_peak": round(peak, 1),
        "rss_mb_after": round(after, 1),
        "rss_growth_mb": round(peak - before, 1),
        "rss_samples": len(samples),
        "login": {
            "seconds": QUICK_FLOOD_S if quick else FLOOD_S,
            "most_checked_per_min": flood.most_checked(),
            "attempts": len(flood.checked) + len(flood.refused) + sum(flood.other.values()),
            "checked": len(flood.checked),
            "refused": len(flood.refused),
            "other": dict(flood.other),
        },
        **seen,
        "refused_by_the_box": ((status.get("services") or {}).get("web") or {}).get("refused"),
    }


def _bodies(url: str, n: int, seen: dict[str, Any]) -> None:
    answers = [hostile.oversize_body(url, "/api/v1/login", BODY_BYTES, chunked=bool(i % 2)) for i in range(n)]
    seen["oversize_bodies"] = {
        "sent": n,
        "statuses": [a.status for a in answers],
        "let_in": [a.sent for a in answers],
    }


def _slow(url: str, seen: dict[str, Any]) -> None:
    held: dict[str, list[float | None]] = {}
    workers = [
        threading.Thread(
            target=lambda m=mode, i=i: held.__setitem__(
                m, hostile.slowloris(url, 10, m, interval=1.0, duration=25.0, source=f"127.0.1.{i + 1}")
            )
        )
        for i, mode in enumerate(("silent", "head", "body"))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(40)
    kept, closed = hostile.flood(url, 200, source="127.0.1.9")
    seen["slow_connections"] = {
        mode: {
            "closed_after_s_max": max((s for s in h if s is not None), default=None),
            "still_open": h.count(None),
        }
        for mode, h in held.items()
    }
    seen["socket_flood"] = {"opened": 200, "kept": kept, "closed": closed}


def _streams_and_names(url: str, seen: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        hogs = [
            stack.enter_context(hostile.hog_streams(url, 10, source=f"127.0.2.{i + 1}")) for i in range(4)
        ]
        statuses = [s for hog in hogs for s in hog.statuses]
        time.sleep(5.0)  # held open while the rest goes on
    rotated = hostile.forwarded_rotation(url, "/api/v1/status", 50, source="127.0.2.9")
    foreign = [
        hostile.foreign_host(url, "/api/v1/status", f"rebind{i}.attacker.example").status for i in range(20)
    ]
    seen["streams"] = {"asked": len(statuses), "let_in": statuses.count(200)}
    seen["forwarded_rotation"] = {"sent": len(rotated), "statuses": sorted({str(s) for s in rotated})}
    seen["foreign_hosts"] = {"sent": len(foreign), "statuses": sorted({str(s) for s in foreign})}


@contextlib.contextmanager
def _sampled(pid: int) -> Iterator[list[float]]:
    """The resident memory of `pid` in MB every SAMPLE_S while the block runs."""
    samples = [hostile.rss_mb(pid)]
    stop = threading.Event()

    def sample(read: Callable[[int], float] = hostile.rss_mb) -> None:
        while not stop.wait(SAMPLE_S):
            with contextlib.suppress(OSError, ValueError):
                samples.append(read(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        stop.set()
        sampler.join(1)
