"""The `sync` section of `bench perf`:

- bytes_over_gzip_json: bytes on the wire per reading when a backlog of the bench world's readings
  (examples/bench.toml, everything running) drains in the minimal tier's packing, over gzip -9 of JSON
  lines of the same readings. Ours: every MQTT PUBLISH packet of a readings batch as the receiver got it
  (payload plus fixed header, topic and packet id; TCP/IP and TLS framing are left out on both sides).
- delivered_unique_over_produced: across fault runs on the sync rig (a broker outage, SIGKILLs of the
  runtime in the middle of a sync, a flapping link when network namespaces can be made), records the
  receiver got at least once over records the store ever held.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import re
import signal
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.sync.mqtt import publish_size
from bench.harness.ports import free_port
from bench.harness.runtime import start_runtime
from bench.harness.worlds import example
from bench.netshape import NetShapeUnavailable, ShapedLink
from bench.perf.needs import IPROUTE2, ROOT
from bench.upstream.broker import Mosquitto
from bench.upstream.receiver import Receiver
from bench.upstream.rig import RigSettings, SyncRig

QUALITY = {0: "ok", 1: "stale", 2: "error"}


def _configs(folder: Path, broker_port: int) -> tuple[Path, Path]:
    """The bench world's config with a sync section, and one that only drains the same store."""
    sync = (
        '\n[sync]\nmax_tier = "minimal"\n'
        f'[sync.upstream]\ntype = "mqtt"\nbroker = "127.0.0.1:{broker_port}"\n'
        '[sync.tiers.minimal]\nclasses = ["critical", "important", "normal", "background"]\n'
        "interval_s = 0.0\n"  # the backlog goes as soon as the link is back, in minimal-tier batches
    )
    text = re.sub(r"(?s)# --- sync.*?# --- end of sync ---", "", example())  # ours instead, to our broker
    world, drain = folder / "appliance.toml", folder / "drain.toml"
    world.write_text(text + sync)
    drain.write_text('[device]\nid = "bench-01"\n[http]\nlisten = "127.0.0.1:0"\n' + sync)
    return world, drain


def _bytes(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="perf-sync-") as name:
        folder = Path(name)
        (folder / "broker").mkdir()
        broker = Mosquitto(folder / "broker", free_port())
        world, drain = _configs(folder, broker.port)
        # The link is down while the whole bench runs: a backlog of its readings builds.
        runtime = start_runtime(world, folder / "data", folder / "journal")
        time.sleep(20 if quick else 120)
        runtime.proc.send_signal(signal.SIGTERM)
        runtime.proc.wait(30)
        broker.start()
        receiver = Receiver(folder / "receiver.db", ("127.0.0.1", broker.port))
        receiver.start()
        runtime = start_runtime(drain, folder / "data", folder / "journal")  # nothing new: only the backlog
        try:
            _wait_quiet(receiver, 3.0, 60.0)
        finally:
            runtime.proc.send_signal(signal.SIGTERM)
            runtime.proc.wait(30)
            receiver.stop()
            broker.stop()
        return _compare(folder / "receiver.db", folder / "data" / "appliance.db")


def _wait_quiet(receiver: Receiver, quiet_s: float, limit_s: float) -> None:
    """Until no batch has arrived for `quiet_s` (after the first one)."""
    deadline, last, seen = time.monotonic() + limit_s, time.monotonic(), -1
    while time.monotonic() < deadline:
        batches = receiver.report()["batches"]
        if batches != seen:
            seen, last = batches, time.monotonic()
        elif batches and time.monotonic() - last >= quiet_s:
            return
        time.sleep(0.2)


def _compare(ledger: Path, store: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(ledger)) as conn:
        batches = conn.execute(
            "SELECT source, bytes FROM batches WHERE stream = 'readings' AND batch_id IS NOT NULL"
        ).fetchall()
        ids = [r[0] for r in conn.execute("SELECT id FROM records WHERE stream = 'readings' ORDER BY id")]
    wire = sum(publish_size(topic, n) for topic, n in batches)  # the packets as the broker passed them on
    with contextlib.closing(sqlite3.connect(store)) as conn:
        rows = conn.execute(
            "SELECT c.device, c.channel, r.value, c.unit, r.ts, r.quality FROM readings r"
            " JOIN channels c ON c.id = r.channel_id"
            " WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY r.id",
            (json.dumps(ids),),
        ).fetchall()
    lines = "\n".join(
        json.dumps({"device": d, "channel": c, "value": v, "unit": u, "ts": ts, "quality": QUALITY[q]})
        for d, c, v, u, ts, q in rows
    )
    baseline = len(gzip.compress(lines.encode(), compresslevel=9))
    n = len(rows)
    assert n == len(ids) and n > 0, "readings delivered but not in the store"
    return {
        "bytes_over_gzip_json": round(wire / baseline, 3),
        "figure": {
            "measured": round(wire / n, 2),
            "baseline": round(baseline / n, 2),
            "unit": "bytes/reading",
            "readings": n,
            "batches": len(batches),
        },
    }


def _faults(quick: bool) -> dict[str, Any]:
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="perf-sync-faults-") as name:
        folder = Path(name)
        (folder / "outage").mkdir()
        with SyncRig(folder / "outage") as rig:
            runtime = rig.start()
            rig.wait(runtime, lambda s: s["records_acked"] > 0, 20, "first records acknowledged")
            rig.broker.stop()
            time.sleep(10 if quick else 60)
            rig.broker.start()
            rig.stop(runtime)
            rig.drain(120)
            runs["broker_outage"] = rig.account()
        (folder / "kills").mkdir()
        kills = 5 if quick else 30
        rng = random.Random(11)
        with SyncRig(folder / "kills", RigSettings(interval_s=0.1)) as rig:
            for i in range(kills):
                runtime = rig.start()
                rig.wait(runtime, lambda s: s["batches_sent"] > 0, 20, "sending")
                if i % 2:
                    time.sleep(rng.uniform(0.0, 0.6))
                else:
                    rig.broker.pause()
                    rig.wait(runtime, lambda s: s["inflight"] > 0, 10, "a batch in flight")
                rig.stop(runtime, signal.SIGKILL)
                rig.broker.resume()
            rig.drain(120)
            runs["sigkill"] = rig.account() | {"kills": kills}
        if not quick and ROOT.present() and IPROUTE2.present():  # the section's part that needs them
            with contextlib.suppress(NetShapeUnavailable), ShapedLink() as link:
                (folder / "flap").mkdir()
                settings = RigSettings(broker_host=link.upstream_ip, netns_prefix=link.exec_prefix)
                with SyncRig(folder / "flap", settings) as rig:
                    runtime = rig.start()
                    link.flap(period_s=6.0, count=5)
                    time.sleep(32)
                    link.stop_flap()
                    rig.stop(runtime)
                    rig.drain(120)
                    runs["flapping"] = rig.account()
    produced = sum(sum(s["produced"] for s in r["streams"].values()) for r in runs.values())
    unique = sum(sum(s["delivered_unique"] for s in r["streams"].values()) for r in runs.values())
    return {"ratio": round(unique / produced, 6), "produced": produced, "unique": unique, "runs": runs}


def run(quick: bool) -> dict[str, Any]:
    size = _bytes(quick)
    faults = _faults(quick)
    return {
        "bytes_over_gzip_json": size["bytes_over_gzip_json"],
        "delivered_unique_over_produced": faults["ratio"],
        "figures": {
            "bytes_over_gzip_json": size["figure"],
            "delivered_unique_over_produced": {
                "measured": faults["unique"],
                "baseline": faults["produced"],
                "unit": "records",
                "runs": {
                    name: {k: r[k] for k in ("duplicate_batches", "missing_seqs", "order_violations")}
                    | {"produced": sum(s["produced"] for s in r["streams"].values())}
                    for name, r in faults["runs"].items()
                },
            },
        },
    }
