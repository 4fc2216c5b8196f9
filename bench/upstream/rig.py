"""A sync rig: a simulated line, a real mosquitto, the receiver, and `appliance run` syncing between them.

Used by the sync fault tests and `bench perf`'s sync section. Four sensors on one Modbus device give the
four priority classes; the policy sends every class in every tier at a short interval, so that all of them
move all the time. `account()` holds the receiver's record against the store: every record the store ever
held (ids are dense, 1..max) must have arrived, or been thinned by the quota and reported so.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.ports import free_port
from bench.harness.runtime import Runtime, start_runtime
from bench.harness.sim import sim_world
from bench.upstream.batches import STREAMS
from bench.upstream.broker import Mosquitto
from bench.upstream.receiver import Receiver

# One Modbus device, one sensor per class: name, class, address, datatype, scale, unit, and its sine
SENSORS = [
    ("temperature", "normal", 0, "float32", 1.0, "degC", (20.0, 5.0, 7.0)),
    ("pressure", "important", 2, "int16", 0.1, "bar", (150.0, 30.0, 5.0)),
    ("alarm", "critical", 3, "int16", 1.0, "", (0.5, 0.5, 3.0)),
    ("vibration", "background", 4, "int16", 0.001, "g", (1.0, 0.8, 0.9)),
]


# The conveyor camera of a rig with QC: rejects leave thumbnails and frames, the evidence stream
MODEL = Path(__file__).resolve().parents[1] / "models" / "qc_demo_int8.tflite"
LABELS = ["ok", "scratch", "missing_hole", "crack", "stain", "misplaced"]


def world(port: int, camera_port: int | None = None) -> str:
    """The simulated line's [bench] table (with a camera when `camera_port` is given)."""
    registers = "".join(
        f'[[bench.modbus_tcp.registers]]\ntable = "input"\naddress = {address}\ndatatype = "{kind}"\n'
        f"scale = {scale}\n"
        f'signal = {{ type = "sine", mean = {mean}, amplitude = {amplitude}, period_s = {period} }}\n'
        for _, _, address, kind, scale, _, (mean, amplitude, period) in SENSORS
    )
    camera = (
        f'[[bench.cameras]]\nname = "cam"\nport = {camera_port}\nfps = 20\nframes_per_part = 8\n'
        "defect_rate = 0.7\nseed = 5\n"
        if camera_port is not None
        else ""
    )
    return f'[bench]\n[[bench.modbus_tcp]]\nname = "line"\nport = {port}\n' + registers + camera


def qc(camera_port: int) -> str:
    """A [qc] section on the rig's camera: every defect a warning, so each reject keeps its evidence."""
    policy = "".join(
        f'[qc.policy.{label}]\nseverity = "warning"\nthreshold = 0.7\ndebounce = [2, 3]\n'
        for label in LABELS[1:]
    )
    return (
        f'[qc]\nmodel = "{MODEL}"\nlabels = {json.dumps(LABELS)}\ninput_range = [0.0, 255.0]\n'
        f'camera = {{ type = "stream", uri = "http://127.0.0.1:{camera_port}/stream.mjpg" }}\n' + policy
    )


@dataclass
class RigSettings:
    poll_interval_s: float = 0.05
    interval_s: float = 0.3  # every tier sends every class this often
    max_inflight: int = 4
    quota_mb: float = 1024.0
    keepalive_s: int = 5
    broker_host: str = "127.0.0.1"
    netns_prefix: list[str] = field(default_factory=list)  # run the broker inside a network namespace
    extra_sync: str = ""  # more keys for [sync]
    camera: bool = False  # a conveyor camera and QC: evidence files to sync


def appliance_config(
    settings: RigSettings,
    sim_port: int,
    broker_port: int,
    devices: bool = True,
    camera_port: int | None = None,
) -> str:
    tiers = "".join(
        f'[sync.tiers.{tier}]\nclasses = ["critical", "important", "normal", "background"]\n'
        f"interval_s = {settings.interval_s}\n"
        for tier in ("minimal", "conservative", "normal", "unmetered")
    )
    classes = ", ".join(f'"line.{name}" = "{klass}"' for name, klass, *_ in SENSORS)
    registers = "".join(
        f'{{ channel = "{name}", table = "input", address = {address}, datatype = "{kind}", scale = {scale},'
        f' unit = "{unit}" }},\n'
        for name, _, address, kind, scale, unit, _ in SENSORS
    )
    line = (
        f'[devices.line]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {sim_port}\n'
        f"poll_interval_s = {settings.poll_interval_s}\ntimeout_s = 0.5\nregisters = [\n{registers}]\n"
    )
    return (
        '[device]\nid = "sync-box"\n[http]\nlisten = "127.0.0.1:0"\n'
        f"[store]\ncommit_interval_ms = 50\nquota_mb = {settings.quota_mb}\n"
        f"[store.classes]\nsensors = {{ {classes} }}\n"
        + (line if devices else "")
        + (qc(camera_port) if devices and camera_port is not None else "")
        + f"[sync]\nmax_inflight = {settings.max_inflight}\nack_timeout_s = 10.0\n{settings.extra_sync}\n"
        f'[sync.upstream]\ntype = "mqtt"\nbroker = "{settings.broker_host}:{broker_port}"\n'
        f"keepalive_s = {settings.keepalive_s}\n"
        # a broker in a namespace of this machine, across a veth pair: plain MQTT, said on purpose
         + ("" if ipaddress.ip_address(settings.broker_host).is_loopback else "insecure = true\n") + tiers
    )


class SyncRig:
    """The whole chain on one desk; use as a context manager."""

    def __init__(self, folder: Path, settings: RigSettings | None = None) -> None:
        self.folder = folder
        self.settings = settings or RigSettings()
        self.data = folder / "data"
        self.broker = Mosquitto(
            folder / "broker", free_port(), host=self.settings.broker_host, prefix=self.settings.netns_prefix
        )
        self.received = folder / "received"  # evidence files, as RECEIVED/DEVICE/NAME
        self.receiver = Receiver(
            folder / "receiver.db", (self.settings.broker_host, self.broker.port), files=self.received
        )
        self._stack = contextlib.ExitStack()
        self.sim_port = free_port()
        self.camera_port = free_port() if self.settings.camera else None

    def __enter__(self) -> SyncRig:
        self._stack.enter_context(sim_world(world(self.sim_port, self.camera_port)))
        (self.folder / "broker").mkdir(exist_ok=True)
        self.broker.start()
        self._stack.callback(self.broker.stop)
        self.receiver.start()
        self._stack.callback(self.receiver.stop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def start(self, devices: bool = True) -> Runtime:
        """`appliance run` on the rig's data directory (without devices: only drains the outbox)."""
        config = self.folder / ("appliance.toml" if devices else "drain.toml")
        config.write_text(
            appliance_config(self.settings, self.sim_port, self.broker.port, devices, self.camera_port)
        )
        runtime = start_runtime(config, self.data, self.folder / "journal")
        self._stack.callback(self._end, runtime)  # a test that fails leaves no runtime running
        return runtime

    @staticmethod
    def _end(runtime: Runtime) -> None:
        if runtime.proc.poll() is None:
            runtime.proc.kill()
            runtime.proc.wait(10)
        if runtime.proc.stdout is not None:
            runtime.proc.stdout.close()

    @staticmethod
    def stop(runtime: Runtime, sig: int = signal.SIGTERM) -> None:
        runtime.proc.send_signal(sig)
        runtime.proc.wait(30)
        if runtime.proc.stdout is not None:
            runtime.proc.stdout.close()

    @staticmethod
    def wait(runtime: Runtime, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            sync = runtime.get("api/v1/status")["sync"]
            if predicate(sync):
                return dict(sync)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout} s; sync status: {sync}")
            time.sleep(0.1)

    def drain(self, timeout: float = 60.0) -> dict[str, Any]:
        """Run without devices until the outbox is empty and acknowledged; the sync status at the end."""
        runtime = self.start(devices=False)
        try:
            return self.wait(
                runtime,
                lambda s: s["backlog"] and not any(s["backlog"].values()) and not s["inflight"],
                timeout,
                "outbox drained",
            )
        finally:
            self.stop(runtime)

    def produced(self) -> dict[str, int]:
        """Records the store ever held, per stream: ids are dense from 1 and the newest is never evicted."""
        with contextlib.closing(sqlite3.connect(self.data / "appliance.db")) as conn:
            return {s: conn.execute(f"SELECT coalesce(max(id), 0) FROM {s}").fetchone()[0] for s in STREAMS}

    def account(self, settle_s: float = 30.0) -> dict[str, Any]:
        """Produced, delivered unique, thinned and the ratio per stream, with the receiver's findings, once
        the receiver has everything or has heard nothing new for 2 s (the broker may still be forwarding
        what it acknowledged, over a slow link)."""
        produced = self.produced()
        deadline, quiet_since, last = time.monotonic() + settle_s, time.monotonic(), -1
        while True:
            report = self.receiver.report()
            got = report["unique_records"] + report["thinned"]
            if got != last:
                quiet_since, last = time.monotonic(), got
            if got >= sum(produced.values()) or time.monotonic() - quiet_since > 2.0:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        streams = {}
        for stream, count in produced.items():
            groups = [g for g in report["streams"].values() if g["stream"] == stream]
            unique = sum(g["unique_records"] for g in groups)
            thinned = sum(g["thinned"] for g in groups)
            streams[stream] = {
                "produced": count,
                "delivered_unique": unique,
                "thinned": thinned,
                "accounted": round((unique + thinned) / count, 6) if count else 1.0,
            }
        groups_all = list(report["streams"].values())  # one store here: its groups are the classes
        total = sum(produced.values())
        delivered = sum(s["delivered_unique"] for s in streams.values())
        accounted = delivered + sum(s["thinned"] for s in streams.values())
        return {
            "streams": streams,
            "delivered_unique_over_produced": round(delivered / total, 6) if total else 1.0,
            "accounted_over_produced": round(accounted / total, 6) if total else 1.0,  # thinned ones reported
            "unique_by_class": {f"{g['stream']}.{g['class']}": g["unique_records"] for g in groups_all},
            "duplicate_batches": report["duplicate_batches"],
            "duplicate_records": report["duplicate_records"],
            "missing_seqs": report["missing_seqs"],
            "order_violations": report["order_violations"],
            "bad_batches": report["bad_batches"],
            "thinned_by_class": {
                f"{g['stream']}.{g['class']}": g["thinned"] for g in groups_all if g["thinned"]
            },
        }


@contextlib.contextmanager
def sync_rig(settings: RigSettings | None = None) -> Iterator[SyncRig]:
    with tempfile.TemporaryDirectory(prefix="sync-rig-") as folder, SyncRig(Path(folder), settings) as rig:
        yield rig
