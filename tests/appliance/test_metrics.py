"""GET /metrics's renderer: the status document as Prometheus text, read back with prometheus_client's own
parser; and the QC pipeline's latency histogram it exports."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from appliance.config.qc import QcSettings
from appliance.qc.pipeline import LATENCY_BUCKETS_MS, LatencyHistogram, QcPipeline
from appliance.records import Event
from appliance.status.qc import QcStatus
from appliance.web.metrics import render
from bench.models.tflite_builder import image_classifier, write
from drivers.camera.source import Frame, FrameSource
from hal.report import detect
from tests.statuses import BENCH, bench_status, status
from tests.statuses import planned_backend as backend
from tests.statuses import status as typed

BOUNDS_MS = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]


def change(ident: str, kind: str, reason: str, ts: float, latency_ms: float) -> dict[str, Any]:
    """A trip or reset in the stop output's history."""
    cause_ns = int(ts * 1e9)
    line_ns = cause_ns + int(latency_ms * 1e6)
    return {"id": ident, "kind": kind, "reason": reason, "source": "request", "ts": ts, "cause_ns": cause_ns,
            "line_ns": line_ns, "line_changed": True, "latency_ms": latency_ms}  # fmt: skip


def sample_status() -> dict[str, Any]:
    """A status document like a bench run's GET /api/v1/status, every section present (what it does not
    say comes from a quiet bench box: tests/statuses.py)."""
    return {
        "device": "bench-01",
        "uptime_s": 24.414,
        "sensors": [
            {"id": "tank-1.level", "device": "tank-1", "channel": "level", "value": 62.155, "unit": "%",
             "ts": 1796300197.779061, "quality": "ok"},
            {"id": "press-1.pump_running", "device": "press-1", "channel": "pump_running", "value": 1.0,
             "unit": "", "ts": 1796300198.2666833, "quality": "ok"},
            {"id": "press-1.serial_number", "device": "press-1", "channel": "serial_number",
             "value": "PX-2207-0419", "unit": "", "ts": 1796300198.2677217, "quality": "ok"},
            {"id": "flow-3.flow", "device": "flow-3", "channel": "flow", "value": None, "unit": "m3/h",
             "ts": 1796300198.2775533, "quality": "error"},
        ],
        "services": {
            "loop": {"running": True, "restarts": 0, "last_error": None, "lag_ms": 2.104,
                     "max_lag_ms": 5.555},
            "store": {
                "running": True, "restarts": 0, "last_error": None, "path": "/data/appliance.db", "schema": 4,
                "rows_committed": 963, "events_committed": 12, "commits": 95, "pending_records": 17,
                "dropped": 0, "commit_errors": 0, "last_commit_ms": 0.224, "used_mb": 0.119,
                "quota_mb": 1024.0, "over_quota": False, "evicted": {"background": 40},
                "bytes_written_per_record": 2611.4,
            },
            "safety": {"running": True, "restarts": 0, "last_error": None, "connected": True,
                       "trips_requested": 5},
            "bus:line-a": {
                "running": True, "restarts": 0, "last_error": None, "url": "/dev/ttyUSB0", "baudrate": 19200,
                "transactions": 96, "garbage_bytes": 7, "reopens": 1, "busy_s": 1.284, "queued": 0,
                "resting_units": [],
            },
            "modbus:press-1": {
                "running": True, "restarts": 2, "last_error": "ConnectionError: refused",
                "endpoint": "127.0.0.1:15020/1", "requests_per_poll": 5, "max_gap": 124,
                "max_gap_mode": "auto", "replans": 2, "polls": 48, "overruns": 1,
                "failures": {"exception": 1, "timeout": 3}, "last_failure": "timeout", "last_poll_ms": 3.65,
            },
            "serial:air": {
                "running": False, "restarts": 0, "last_error": "", "state": "open", "frames_ok": 47,
                "errors": {"bad_checksum": 2, "garbage": 0}, "reconnects": 1, "stale": [],
            },
            "web": {"running": True, "restarts": 0, "last_error": None, "url": "http://127.0.0.1:18080/"},
        },
        "hal": {
            "board": {"key": "rpi5", "name": "Raspberry Pi 5", "model": "Raspberry Pi 5 Model B Rev 1.0",
                      "soc": "bcm2712", "family": "rpi", "detail": None},
            "accelerators": [{"key": "hailo8l", "name": "Hailo-8L", "kind": "hailo",
                              "found_at": "/dev/hailo0", "detail": None, "runs": "HEF models",
                              "litert_delegate": None, "needs_int8": True}],
            "inference": {"backends": [backend("xnnpack", 4), backend("cpu", 1)],
                          "model_variant": "int8", "variant_reason": "", "notes": []},
            "cpu": {"architecture": "aarch64", "model": "Cortex-A76", "cores": 4, "features": []},
            "memory_mb": 8064,
            "storage": [],
        },
        "qc": {
            "frames": 237,
            "fps": 10.0,
            "defects": {"crack": 5, "scratch": 1},
            "latency_ms": {"p50": 1.056, "p99": 1.702},
            "latency_histogram": {"le_ms": BOUNDS_MS, "counts": [3, 200, 30, 4, 0, 0, 0, 0, 0, 0, 0, 0],
                                  "sum_ms": 262.5, "count": 237},
            "camera": {"state": "streaming", "frames": 237, "dropped": 2, "reopens": 0, "failures": 0,
                       "queued": 0, "last_error": None, "last_frame_age_s": 0.026},
            "inference": {"backend": "xnnpack", "fallbacks": 0, "recoveries": 0},
            "evidence": {"saved": 11, "deleted": 0, "dropped": 0, "errors": 0, "bytes": 222238,
                         "budget_bytes": 200000000, "files": 22},
        },
        "estop": {
            "state": "tripped", "reason": "QC: crack (1.00) on frame 5", "since": 1796300175.193894,
            "latched": True, "phase": "tripped", "causes": [], "trips": 3, "resets": 2, "refused_resets": 1,
            "history": [  # newest first
                change("a-3", "reset", "admin", 1796300176.0, 0.02),
                change("a-2", "trip", "QC", 1796300175.1, 0.4456),
                change("a-1", "trip", "manual", 1796300170.0, 9.0),
            ],
            "supervisor": {"pid": 12521},
            "rules": [{"name": "oil too hot", "type": "threshold", "severity": "critical", "active": True,
                       "detail": "97 degC"}],
        },
        "sync": {
            "tier": "normal", "goodput_mbit": 8.0, "rtt_ms": 42.0, "samples": 2, "since": 13.6,
            "metered": True, "link": "cellular", "failures": 4,
            "backlog": {"critical": 0, "important": 3, "normal": 342, "background": 2},
            "oldest_s": {"critical": None, "important": 7.9, "normal": 8.6, "background": 7.9},
            "last_ok": 1796300194.3963952, "inflight": 1, "batches_sent": 10, "batches_acked": 9,
            "records_acked": 626, "resent": 1, "payload_bytes": 177785, "wire_bytes": 243750,
            "upstream": {
                "kind": "mqtt",
                "connected": True,
                "last_error": None,
                "secure": False,
                "loopback": True,
            },
        },
        "runtime": {"version": "0.1.0", "pid": 12507, "loop_lag_ms": 2.104},
    }  # fmt: skip


def families(text: str) -> dict[str, Metric]:
    """The exposition read back by prometheus_client (which names a counter without its _total)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(parsed: dict[str, Metric], sample: str, **labels: str) -> float:
    matches = [
        s.value
        for f in parsed.values()
        for s in f.samples
        if s.name == sample and labels.items() <= s.labels.items()
    ]
    assert len(matches) == 1, f"{sample} {labels}: {matches}"
    return float(matches[0])


def test_every_family_is_typed_once_with_base_units_in_its_name() -> None:
    text = render(status(sample_status()))
    parsed = families(text)
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(types) == len(set(types)) == len(parsed) and helps == types
    assert all(name.startswith("appliance_") for name in types)
    expected = {
        "appliance_up": "gauge",
        "appliance_info": "gauge",
        "appliance_uptime_seconds": "gauge",
        "appliance_loop_lag_seconds": "gauge",
        "appliance_service_running": "gauge",
        "appliance_service_restarts": "counter",
        "appliance_sensor_value": "gauge",
        "appliance_sensor_timestamp_seconds": "gauge",
        "appliance_modbus_polls": "counter",
        "appliance_modbus_overruns": "counter",
        "appliance_modbus_failures": "counter",
        "appliance_serial_errors": "counter",
        "appliance_bus_garbage_bytes": "counter",
        "appliance_qc_frames": "counter",
        "appliance_qc_frames_per_second": "gauge",
        "appliance_qc_defects": "counter",
        "appliance_qc_latency_seconds": "histogram",
        "appliance_estop_tripped": "gauge",
        "appliance_estop_trips": "counter",
        "appliance_estop_resets": "counter",
        "appliance_estop_refused_resets": "counter",
        "appliance_estop_last_trip_latency_seconds": "gauge",
        "appliance_sync_tier": "gauge",
        "appliance_sync_goodput_bytes_per_second": "gauge",
        "appliance_sync_rtt_seconds": "gauge",
        "appliance_sync_backlog_records": "gauge",
        "appliance_sync_oldest_record_age_seconds": "gauge",
        "appliance_sync_payload_bytes": "counter",
        "appliance_sync_wire_bytes": "counter",
        "appliance_sync_batches_acked": "counter",
        "appliance_sync_records_acked": "counter",
        "appliance_store_rows_committed": "counter",
        "appliance_store_used_bytes": "gauge",
        "appliance_store_quota_bytes": "gauge",
        "appliance_hal_info": "gauge",
    }
    assert {name: parsed[name].type for name in expected if name in parsed} == expected
    for family in parsed.values():  # counters end in _total; the parser took the suffix off the family
        assert family.type != "counter" or all(s.name == family.name + "_total" for s in family.samples)


def test_values_are_in_base_units_and_labelled() -> None:
    parsed = families(render(status(sample_status())))
    assert value(parsed, "appliance_up") == 1
    assert value(parsed, "appliance_info", device="bench-01", version="0.1.0") == 1
    assert value(parsed, "appliance_loop_lag_seconds") == 0.002104
    assert value(parsed, "appliance_service_running", service="serial:air") == 0
    assert value(parsed, "appliance_service_restarts_total", service="modbus:press-1") == 2
    assert value(parsed, "appliance_sensor_value", sensor="tank-1.level", unit="%", quality="ok") == 62.155
    assert value(parsed, "appliance_modbus_failures_total", device="press-1", kind="timeout") == 3
    assert value(parsed, "appliance_modbus_last_poll_seconds", device="press-1") == 0.00365
    assert value(parsed, "appliance_serial_errors_total", device="air", kind="bad_checksum") == 2
    assert value(parsed, "appliance_bus_garbage_bytes_total", bus="line-a") == 7
    assert value(parsed, "appliance_qc_defects_total", **{"class": "crack"}) == 5
    assert value(parsed, "appliance_estop_tripped") == 1
    assert value(parsed, "appliance_estop_refused_resets_total") == 1
    assert value(parsed, "appliance_estop_last_trip_latency_seconds") == 0.0004456  # the newest trip
    assert value(parsed, "appliance_estop_rule_active", rule="oil too hot", severity="critical") == 1
    assert value(parsed, "appliance_sync_goodput_bytes_per_second") == 1e6
    assert value(parsed, "appliance_sync_rtt_seconds") == 0.042
    assert value(parsed, "appliance_sync_backlog_records", **{"class": "normal"}) == 342
    assert value(parsed, "appliance_sync_oldest_record_age_seconds", **{"class": "important"}) == 7.9
    assert value(parsed, "appliance_store_used_bytes") == 119000
    assert value(parsed, "appliance_store_quota_bytes") == 1.024e9
    assert value(parsed, "appliance_store_evicted_records_total", **{"class": "background"}) == 40
    assert value(parsed, "appliance_hal_info", board="rpi5", inference="xnnpack") == 1
    assert value(parsed, "appliance_hal_memory_bytes") == 8064 * 2**20
    tiers = {s.labels["tier"]: s.value for s in parsed["appliance_sync_tier"].samples}
    assert tiers == {"offline": 0, "minimal": 0, "conservative": 0, "normal": 1, "unmetered": 0}


def test_only_numbers_are_values_but_every_reading_has_its_timestamp() -> None:
    parsed = families(render(status(sample_status())))
    valued = {s.labels["sensor"] for s in parsed["appliance_sensor_value"].samples}
    stamped = {s.labels["sensor"] for s in parsed["appliance_sensor_timestamp_seconds"].samples}
    assert valued == {"tank-1.level", "press-1.pump_running"}  # not the serial number, not the failed read
    assert stamped == valued | {"press-1.serial_number", "flow-3.flow"}
    assert value(parsed, "appliance_sensor_timestamp_seconds", sensor="tank-1.level") == 1796300197.779061
    critical = [
        s
        for s in parsed["appliance_sync_oldest_record_age_seconds"].samples
        if s.labels["class"] == "critical"
    ]
    assert critical == []  # nothing waiting: no age


def test_label_values_are_escaped() -> None:
    status = sample_status()
    awkward = 'bay "3"\\left\nline'
    status["device"] = awkward
    status["sensors"][0]["id"] = awkward
    status["estop"]["rules"][0]["name"] = awkward
    text = render(typed(status))
    assert 'device="bay \\"3\\"\\\\left\\nline"' in text
    assert all(line.startswith(("appliance_", "# HELP ", "# TYPE ")) for line in text.splitlines())
    parsed = families(text)
    assert value(parsed, "appliance_info", device=awkward) == 1
    assert value(parsed, "appliance_sensor_value", sensor=awkward) == 62.155
    assert value(parsed, "appliance_estop_rule_active", rule=awkward) == 1


def test_the_latency_histogram_is_cumulative_in_seconds() -> None:
    parsed = families(render(status(sample_status())))
    samples = parsed["appliance_qc_latency_seconds"].samples
    buckets = [(s.labels["le"], s.value) for s in samples if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == [*(str(b / 1000) for b in BOUNDS_MS), "+Inf"]
    counts = [n for _, n in buckets]
    assert counts == sorted(counts) and counts[:4] == [3, 203, 233, 237]
    assert value(parsed, "appliance_qc_latency_seconds_count") == counts[-1] == 237
    assert math.isclose(value(parsed, "appliance_qc_latency_seconds_sum"), 0.2625)


def test_null_sections_are_skipped() -> None:
    said = sample_status()
    said.update(hal=None, qc=None, estop=None, sync=None)  # sync: disabled
    parsed = families(render(status(said)))
    assert not [
        name for name in parsed if name.startswith(("appliance_qc", "appliance_estop", "appliance_sync"))
    ]
    assert not [name for name in parsed if name.startswith("appliance_hal")]
    assert value(parsed, "appliance_loop_lag_seconds") == 0.002104


def test_null_figures_are_left_out() -> None:
    said = sample_status()
    said["qc"] |= {"latency_ms": {"p50": None, "p99": None}, "inference": {"backend": None, "fallbacks": None,
                   "recoveries": None}}  # fmt: skip
    said["sync"] |= {"tier": "offline", "goodput_mbit": None, "rtt_ms": None, "last_ok": None}
    said["estop"] |= {"reason": "no connection to the safety supervisor", "history": [], "since": None}
    parsed = families(render(status(said)))
    assert value(parsed, "appliance_qc_frames_total") == 237
    assert "appliance_qc_inference_fallbacks" not in parsed
    assert value(parsed, "appliance_sync_tier", tier="offline") == 1
    assert "appliance_sync_goodput_bytes_per_second" not in parsed
    assert "appliance_sync_last_ok_timestamp_seconds" not in parsed
    assert value(parsed, "appliance_estop_tripped") == 1
    assert "appliance_estop_last_trip_latency_seconds" not in parsed
    assert "appliance_estop_since_timestamp_seconds" not in parsed


def test_a_bare_status_says_up_and_the_process_figures() -> None:
    parsed = families(render(status({"hal": None, "qc": None, "estop": None, "disk": None})))
    assert set(parsed) == {
        "appliance_up",
        "appliance_info",
        "appliance_uptime_seconds",
        "appliance_loop_lag_seconds",
    }


def test_the_same_metrics_as_the_hand_written_exposition_before() -> None:
    """A bench box's status rendered now, and what the hand-written renderer made of the same document
    (tests/fixtures/status/bench.metrics): the same families, types, help, labels and values."""
    before = (BENCH.parent / "bench.metrics").read_text()
    now = render(bench_status())

    def read(
        text: str,
    ) -> tuple[dict[str, tuple[str, str]], set[tuple[str, tuple[tuple[str, str], ...], float]]]:
        kinds, samples = {}, set()
        for family in text_string_to_metric_families(text):
            kinds[family.name] = (family.type, family.documentation)
            samples |= {(s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples}
        return kinds, samples

    assert read(now) == read(before)
    assert len(read(now)[1]) > 150


def test_histogram_buckets_take_a_bound_as_less_or_equal() -> None:
    histogram, observed = LatencyHistogram(), (0.0, 0.5, 0.51, 1.0, 999.0, 1000.0, 1000.1, 5000.0)
    for ms in observed:
        histogram.observe(ms)
    counted = histogram.status()
    assert counted.le_ms == BOUNDS_MS == list(LATENCY_BUCKETS_MS)
    assert counted.counts == [2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2]  # per bucket; the last is above 1 s
    assert counted.count == len(observed) and counted.sum_ms == round(sum(observed), 3)


class ListSource(FrameSource):
    """The given frames once, then nothing (as a camera that went quiet, short of its stall time)."""

    def __init__(self, images: list[npt.NDArray[np.uint8]]) -> None:
        super().__init__("list")
        self.images = images

    def open(self) -> None:
        return None

    def read(self) -> Frame | None:
        if self.count < len(self.images):
            return self._frame(self.images[self.count])
        time.sleep(0.01)
        return None

    def close(self) -> None:
        return None


def test_the_pipeline_counts_every_frame_in_its_latency_histogram(tmp_path: Path) -> None:
    write(tmp_path / "rgb.tflite", image_classifier(32, 32, 3, 3, dtype="uint8"))
    settings = QcSettings.model_validate(
        {
            "model": "rgb.tflite",
            "labels": ["red", "green", "blue"],
            "camera": {"type": "directory", "uri": str(tmp_path)},
            "policy": {"red": {"severity": "warning", "threshold": 0.8}},
        }
    )
    colours = [(0, 0, 220), (0, 200, 0), (220, 0, 0)]  # BGR
    images = [np.full((120, 160, 3), colours[i % 3], np.uint8) for i in range(25)]
    source, plan, events = ListSource(images), detect("/").plan, list[Event]()

    async def run() -> QcStatus:
        pipeline = QcPipeline(
            settings, tmp_path, tmp_path / "data", lambda: plan, events.extend, source=lambda: source
        )
        await pipeline.open()
        try:
            pipeline.start_streaming()
            for _ in range(2000):  # 20 s at most
                if pipeline.frames >= len(images):
                    break
                await asyncio.sleep(0.01)
            return pipeline.status()
        finally:
            await pipeline.close()

    qc = asyncio.run(run())
    histogram = qc.latency_histogram
    assert qc.frames == len(images) == histogram.count == sum(histogram.counts)
    assert histogram.le_ms == BOUNDS_MS and len(histogram.counts) == len(BOUNDS_MS) + 1
    assert 0 < histogram.sum_ms < len(images) * 1000
    shown = qc.model_dump(mode="json") | {"running": True}  # opened by hand here, not start()ed
    parsed = families(render(status({"services": {"qc": shown}})))
    assert value(parsed, "appliance_qc_latency_seconds_count") == len(images)
    assert value(parsed, "appliance_qc_latency_seconds_bucket", le="+Inf") == len(images)
    assert value(parsed, "appliance_qc_frames_total") == len(images)
