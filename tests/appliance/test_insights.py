"""Health insights: each rule fires on its figures with a plain sentence, stays quiet on a healthy box, keeps
its `since`, and remembers no more than the latest status holds."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from appliance import insights
from appliance.config.qc import QcSettings
from appliance.insights import HealthInsights
from tests.statuses import planned_backend as backend
from tests.statuses import status
from tests.statuses import status as typed

T0 = 1_796_300_000.0
SEVERITIES = {"critical": 0, "warning": 1, "info": 2}
TOPICS = {"sensors", "qc", "sync", "store", "safety", "hardware", "runtime"}


class Health(HealthInsights):
    """The assessor fed with status documents as these tests write them (a few sections, completed from a
    quiet bench box: tests/statuses.py), answering with insights as the status document shows them."""

    def assess(self, status: Any, now: float) -> list[dict[str, Any]]:  # type: ignore[override]
        return [insight.model_dump(mode="json") for insight in super().assess(typed(status), now)]


def service(**details: Any) -> dict[str, Any]:
    return {"running": True, "restarts": 0, "last_error": None, **details}


def healthy(now: float) -> dict[str, Any]:
    """A status document of a box with nothing wrong, shaped like GET /api/v1/status."""
    sensor = {"device": "press-1", "unit": "degC", "ts": now - 0.5, "quality": "ok", "value": 47.8}
    return {
        "device": "bench-01",
        "uptime_s": 600.0,
        "sensors": [
            {**sensor, "id": "press-1.oil_temperature", "channel": "oil_temperature"},
            {**sensor, "id": "press-1.hydraulic_pressure", "channel": "hydraulic_pressure", "unit": "bar"},
            {**sensor, "id": "air.temperature", "device": "air", "channel": "temperature"},
        ],
        "services": {
            "loop": service(lag_ms=2.1),
            "store": service(used_mb=0.5, quota_mb=1024.0, over_quota=False, dropped=0, commit_errors=0),
            "sync": service(tier="unmetered"),
            "safety": service(connected=True),
            "bus:line-a": service(garbage_bytes=0, reopens=1),
            "modbus:press-1": service(
                endpoint="127.0.0.1:15020/1",
                overruns=0,
                failures={"exception": 1},
                last_failure="holding 100+106 on unit 1: Modbus exception code 2",
                last_poll_ms=3.6,
            ),
            "serial:air": service(last_error="", state="open", errors={"bad_checksum": 0}, reconnects=0),
            "qc": service(),
        },
        "hal": {"inference": {"backends": [backend("xnnpack"), backend("cpu")]}},
        "qc": {
            "fps": 10.0,
            "latency_ms": {"p50": 1.1, "p99": 1.7},
            "latency_budget_ms": 100.0,
            "camera": {"state": "streaming", "reopens": 0, "last_error": None},
            "inference": {"backend": "xnnpack", "fallbacks": 0, "recoveries": 0},
        },
        "estop": {"state": "ok", "reason": "", "since": T0 - 3600, "phase": "ok", "latched": False},
        "sync": {
            "tier": "unmetered",
            "backlog": {"critical": 0, "important": 3, "normal": 342, "background": 2},
            "oldest_s": {"critical": None, "important": 7.9, "normal": 8.6, "background": 7.9},
            "last_ok": now - 4,
            "upstream": {
                "kind": "mqtt",
                "connected": True,
                "last_error": None,
                "secure": True,
                "loopback": False,
            },
        },
        "runtime": {"version": "0.1.0", "pid": 4242, "loop_lag_ms": 2.1},
        "disk": {"path": "/data", "total_mb": 30000.0, "free_mb": 15000.0},
    }


def by_id(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {insight["id"]: insight for insight in found}


def only(found: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(found) == 1, found
    return found[0]


def assert_well_formed(found: list[dict[str, Any]]) -> None:
    for insight in found:
        assert set(insight) == {"id", "severity", "topic", "message", "advice", "since"}
        assert insight["severity"] in SEVERITIES and insight["topic"] in TOPICS
        for sentence in (insight["message"], insight["advice"]):
            assert sentence[0].isupper() or sentence[0].isdigit(), sentence
            assert sentence.endswith(".") and "None" not in sentence, sentence
    ranks = [SEVERITIES[insight["severity"]] for insight in found]
    assert ranks == sorted(ranks), "most severe first"


# A healthy box, and statuses with sections missing


def test_a_healthy_box_has_no_insights_over_time() -> None:
    health = Health()
    for t in range(0, 900, 7):
        assert health.assess(healthy(T0 + t), T0 + t) == []


def test_a_box_without_optional_sections_has_no_insight() -> None:
    """No hardware report yet, no QC, no stop output, no sync, no disk figures, no sensors or services."""
    bare = {"hal": None, "qc": None, "estop": None, "disk": None}
    health = Health()
    assert health.assess(bare, T0) == []
    assert health.assess(bare, T0 + 1) == []


@pytest.mark.parametrize(
    "odd",
    [
        {"sensors": "x"},
        {"services": [1]},
        {"qc": 5},
        {"hal": {"inference": {"backends": "x"}}},
        {"sensors": [{"quality": "stale"}]},
        {"services": {"modbus:x": {"failures": "x"}}},
        {"sync": {"tier": "disabled", "backlog": 3, "last_ok": None}},
    ],
)
def test_odd_sections_never_reach_the_rules(odd: dict[str, Any]) -> None:
    """The status is typed: a section that is not what its model says is refused where it is made."""
    with pytest.raises(ValidationError):
        status(odd)


# Sensors


def test_a_channel_stale_for_five_minutes_is_named_with_how_long() -> None:
    health, status = Health(), healthy(T0)
    status["sensors"][0].update(quality="stale", ts=T0 - 240)
    assert health.assess(status, T0) == []  # four minutes: not yet
    found = health.assess(status, T0 + 70)
    assert_well_formed(found)
    insight = only(found)
    assert insight["id"] == "sensor-stale:press-1.oil_temperature"
    assert (insight["severity"], insight["topic"]) == ("warning", "sensors")
    assert insight["message"] == "Sensor press-1.oil_temperature has been stale (no fresh value) for 5 min."
    assert "press-1" in insight["advice"] and "wiring" in insight["advice"]
    assert insight["since"] == T0 - 240


def test_a_channel_in_error_is_timed_from_when_it_was_first_seen() -> None:
    health = Health()
    for t in (0, 100, 299):
        status = healthy(T0 + t)
        status["sensors"][2].update(quality="error", value=None)  # each poll brings a fresh error reading
        assert health.assess(status, T0 + t) == []
    status = healthy(T0 + 301)
    status["sensors"][2].update(quality="error", value=None)
    insight = only(health.assess(status, T0 + 301))
    assert insight["id"] == "sensor-error:air.temperature"
    assert insight["message"] == "Sensor air.temperature has failed to read for 5 min."
    assert insight["since"] == round(T0 - 0.5, 3)


def test_channels_of_one_device_make_one_insight() -> None:
    health, status = Health(), healthy(T0)
    for sensor in status["sensors"][:2]:
        sensor.update(quality="stale", ts=T0 - 3 * 3600 - 600)
    insight = only(health.assess(status, T0))
    assert insight["id"] == "sensor-stale:press-1"
    assert insight["message"] == (
        "2 channels of press-1 (oil_temperature, hydraulic_pressure) have been stale (no fresh value) "
        "for 3 h 10 min."
    )


def test_a_channel_that_recovers_is_forgotten() -> None:
    health, status = Health(), healthy(T0)
    status["sensors"][0].update(quality="stale", ts=T0 - 600)
    assert len(health.assess(status, T0)) == 1
    assert health.assess(healthy(T0 + 1), T0 + 1) == []
    status = healthy(T0 + 2)
    status["sensors"][0].update(quality="error", value=None)
    assert health.assess(status, T0 + 2) == []  # a new error: its five minutes start again


# Drivers and services


def test_modbus_failures_rising_are_reported_for_a_while() -> None:
    health, status = Health(), healthy(T0)
    assert health.assess(status, T0) == []  # the first look sets the baseline: 1 old failure
    status["services"]["modbus:press-1"]["failures"] = {"exception": 2, "timeout": 3}
    insight = only(health.assess(status, T0 + 5))
    assert insight["id"] == "driver-failures:press-1"
    assert insight["message"] == (
        "Modbus device press-1 (127.0.0.1:15020/1) had 4 failed requests in the last minute; the last: "
        "holding 100+106 on unit 1: Modbus exception code 2."
    )
    assert only(health.assess(status, T0 + 60))["since"] == T0 + 5  # still shown while no new failure
    assert health.assess(status, T0 + 5 + insights.COUNTER_HOLD_S + 1) == []


def test_modbus_overruns_and_a_counter_that_starts_again() -> None:
    health, status = Health(), healthy(T0)
    status["services"]["modbus:press-1"]["overruns"] = 7
    health.assess(status, T0)
    status["services"]["modbus:press-1"]["overruns"] = 8
    insight = only(health.assess(status, T0 + 1))
    assert insight["message"] == (
        "Modbus device press-1 overran its poll interval 1 time in the last minute "
        "(the last poll took 3.6 ms)."
    )
    assert "poll_interval_s" in insight["advice"]
    fresh = healthy(T0 + 200)  # the service was rebuilt: its counters start at 0 again
    assert health.assess(fresh, T0 + 200) == []


def test_serial_sensor_errors_and_a_lost_line() -> None:
    health, status = Health(), healthy(T0)
    health.assess(status, T0)
    air = status["services"]["serial:air"]
    air.update(state="connecting", reconnects=4, last_error="[Errno 2] could not open port /dev/ttyUSB0")
    air["errors"] = {"bad_checksum": 5, "garbage": 2}
    first = by_id(health.assess(status, T0 + 1))
    assert set(first) == {"driver-errors:air"}
    assert first["driver-errors:air"]["message"] == (
        "Serial sensor air sent 7 bad frames in the last minute (so far: bad_checksum 5, garbage 2)."
    )
    later = by_id(health.assess(status, T0 + 40))
    assert later["serial-down:air"]["message"] == (
        "Serial sensor air has not been connected for 39 s (state connecting, 4 reconnects); "
        "last error: [Errno 2] could not open port /dev/ttyUSB0."
    )


def test_rs485_garbage_rising() -> None:
    health, status = Health(), healthy(T0)
    health.assess(status, T0)
    status["services"]["bus:line-a"]["garbage_bytes"] = 12
    insight = only(health.assess(status, T0 + 90))
    assert insight["id"] == "bus-garbage:line-a"
    assert "12 bytes of garbage" in insight["message"] and "termination" in insight["advice"]


def test_values_that_are_no_finite_number_rising() -> None:
    health, status = Health(), healthy(T0)
    health.assess(status, T0)
    status["services"]["serial:air"]["bad_values"] = {"temperature": 3}
    status["services"]["modbus:press-1"]["bad_values"] = {"oil_temperature": 1}
    insights = by_id(health.assess(status, T0 + 1))
    assert insights["bad-values:air"]["message"] == (
        "Device air sent 3 non-finite values (inf or nan) in the last minute (so far: temperature 3)."
    )
    assert "a missing probe reads NaN" in insights["bad-values:air"]["advice"]
    assert insights["bad-values:press-1"]["message"].startswith("Device press-1 sent 1 non-finite value (inf")


def test_a_service_not_running_and_one_restarting() -> None:
    health, status = Health(), healthy(T0)
    health.assess(status, T0)
    status["services"]["safety"].update(running=False, last_error="ConnectionRefusedError: [Errno 111]")
    status["services"]["sync"].update(restarts=2, last_error="OSError: network unreachable")
    found = health.assess(status, T0 + 1)
    assert [i["id"] for i in found] == ["service-restarts:sync"]  # not running: given a few seconds
    found = health.assess(status, T0 + 12)
    assert_well_formed(found)
    down, restarts = found
    assert (down["id"], down["severity"], down["topic"]) == ("service-down:safety", "critical", "safety")
    assert down["message"] == (
        "Service safety has not been running for 11 s; last error: ConnectionRefusedError: [Errno 111]."
    )
    assert restarts["message"] == (
        "Service sync restarted 2 times in the last minute; last error: OSError: network unreachable."
    )
    assert (restarts["topic"], "journalctl" in restarts["advice"]) == ("sync", True)


# QC and hardware


def test_qc_latency_over_its_budget() -> None:
    health, status = Health(), healthy(T0)
    status["qc"]["latency_ms"] = {"p50": 80.0, "p99": 142.5}
    insight = only(health.assess(status, T0))
    assert insight["id"] == "qc-latency"
    assert insight["message"] == "QC's p99 latency is 142 ms (p50 80 ms), over its 100 ms budget."
    assert "qc.latency_budget_ms" in insight["advice"]
    status["qc"]["latency_budget_ms"] = 150.0
    assert health.assess(status, T0 + 1) == []


def test_a_camera_that_stopped_streaming() -> None:
    health, status = Health(), healthy(T0)
    status["qc"]["camera"] = {"state": "opening", "reopens": 3, "last_error": "no frame for 5.0 s"}
    assert health.assess(status, T0) == []
    insight = only(health.assess(status, T0 + 15))
    assert insight["message"] == (
        "The QC camera has sent no frame for 15 s (state opening, 3 reopens); last error: no frame for 5.0 s."
    )


def test_inference_fallen_back_from_a_planned_accelerator() -> None:
    health, status = Health(), healthy(T0)
    status["hal"]["inference"]["backends"].insert(0, backend("edgetpu"))
    status["qc"]["inference"] = {"backend": "xnnpack", "fallbacks": 1, "recoveries": 0}
    insight = only(health.assess(status, T0))
    assert (insight["id"], insight["topic"]) == ("inference-fallback", "hardware")
    assert insight["message"] == (
        "QC inference runs on xnnpack instead of the planned edgetpu (1 fallback, 0 recoveries)."
    )
    assert "edgetpu" in insight["advice"]


def test_an_accelerator_that_dropped_out_and_came_back_is_info() -> None:
    health, status = Health(), healthy(T0)
    status["hal"]["inference"]["backends"].insert(0, backend("edgetpu"))
    status["qc"]["inference"] = {"backend": "edgetpu", "fallbacks": 0, "recoveries": 0}
    assert health.assess(status, T0) == []
    status["qc"]["inference"] = {"backend": "edgetpu", "fallbacks": 2, "recoveries": 2}
    insight = only(health.assess(status, T0 + 1))
    assert (insight["id"], insight["severity"]) == ("inference-recovered", "info")
    assert (
        insight["message"] == "QC inference fell back from edgetpu 2 times in the last minute and came back."
    )


# Sync


def test_no_upstream_for_a_minute() -> None:
    health, status = Health(), healthy(T0)
    status["sync"]["tier"] = "offline"
    status["sync"]["upstream"] |= {"connected": False, "last_error": "connection refused"}
    assert health.assess(status, T0) == []
    insight = only(health.assess(status, T0 + 61))
    assert insight["id"] == "sync-offline"
    assert insight["message"] == (
        "The upstream (mqtt) has been unreachable for 1 min; 347 records wait on the box; "
        "last error: connection refused."
    )
    assert insight["since"] == T0


def test_records_waiting_over_ten_minutes() -> None:
    health, status = Health(), healthy(T0)
    status["sync"]["oldest_s"].update(critical=900.0, normal=1500.0)
    status["sync"]["backlog"]["critical"] = 4
    found = by_id(health.assess(status, T0))
    assert found["sync-oldest:critical"]["severity"] == "critical"
    assert found["sync-oldest:normal"]["message"] == (
        "The oldest of 342 normal records has waited 25 min although the unmetered tier sends them."
    )


def test_classes_held_back_by_a_slow_tier_are_info() -> None:
    health, status = Health(), healthy(T0)
    status["sync"]["tier"] = "minimal"
    status["sync"]["oldest_s"]["normal"] = 1500.0
    insight = only(health.assess(status, T0))
    assert (insight["id"], insight["severity"]) == ("sync-held:normal", "info")
    assert (
        insight["message"] == "342 normal records wait for a better link than minimal, the oldest for 25 min."
    )


def run_backlog(health: Health, backlog: list[int]) -> list[dict[str, Any]]:
    """One status every 5 s with the given normal backlog; the insights of the last."""
    found: list[dict[str, Any]] = []
    for i, normal in enumerate(backlog):
        status = healthy(T0 + 5 * i)
        status["sync"]["tier"] = "normal"
        status["sync"]["backlog"]["normal"] = normal
        found = health.assess(status, T0 + 5 * i)
    return found


def test_a_backlog_growing_for_minutes() -> None:
    health = Health()
    found = run_backlog(health, [100 + 20 * i for i in range(73)])  # six minutes of steady growth
    insight = only(found)
    assert insight["id"] == "sync-backlog"
    assert insight["message"].startswith("The sync backlog of critical, important, normal records grew from ")
    assert insight["message"].endswith(" over 5 min on the normal tier.")


def test_a_sawtooth_backlog_is_not_growth() -> None:
    # batches every 15 s take the backlog back down: the box keeps up
    assert run_backlog(Health(), [(i % 3) * 400 for i in range(150)]) == []


def test_a_backlog_that_grew_only_for_a_short_while_is_not_reported() -> None:
    assert run_backlog(Health(), [100] * 30 + [100 + 50 * i for i in range(30)]) == []


# Disk, store, safety, runtime


@pytest.mark.parametrize(
    ("free_mb", "severity"), [(15000.0, None), (2900.0, "warning"), (800.0, "critical"), (0.0, "critical")]
)
def test_a_nearly_full_disk(free_mb: float, severity: str | None) -> None:
    status = healthy(T0)
    status["disk"]["free_mb"] = free_mb
    found = Health().assess(status, T0)
    assert [i["severity"] for i in found] == ([severity] if severity else [])
    if free_mb == 800.0:
        assert found[0]["message"] == "The data file system (/data) has 800 MB free of 29.3 GB (2.7%)."


def test_no_disk_figures_no_insight() -> None:
    status = healthy(T0)
    status["disk"] = None  # the data directory could not be read
    assert Health().assess(status, T0) == []


def test_a_store_over_quota_dropping_and_failing_to_commit() -> None:
    health, status = Health(), healthy(T0)
    health.assess(status, T0)
    status["services"]["store"].update(
        over_quota=True, used_mb=1100.0, dropped=250, commit_errors=3, last_error=None
    )
    found = health.assess(status, T0 + 1)
    assert_well_formed(found)
    assert [i["severity"] for i in found] == ["critical", "critical", "warning"]
    messages = {i["id"]: i["message"] for i in found}
    assert messages == {
        "store-dropping": "The store dropped 250 records in the last minute; they are lost.",
        "store-commit-errors": "The store failed to commit 3 times in the last minute.",
        "store-over-quota": "The store is over its quota (1.1 GB of 1.0 GB) with nothing left to evict.",
    }


def test_a_tripped_stop_output_says_why_and_how_long() -> None:
    status = healthy(T0)
    status["estop"] = {
        "state": "tripped",
        "phase": "tripped",
        "latched": True,
        "reason": "QC: crack (1.00) on frame 5",
        "since": T0 - 754,
    }
    insight = only(Health().assess(status, T0))
    assert (insight["id"], insight["severity"], insight["topic"]) == ("estop-tripped", "critical", "safety")
    assert insight["message"] == "The stop output has been tripped for 12 min: QC: crack (1.00) on frame 5."
    assert "reset" in insight["advice"] and insight["since"] == T0 - 754


def test_a_stop_output_without_its_supervisor_or_waiting_to_start() -> None:
    status = healthy(T0)
    status["estop"] = {
        "state": "tripped",
        "phase": "unknown",
        "reason": "no connection to the safety supervisor",
    }
    insight = only(Health().assess(status, T0))
    assert insight["message"] == "The stop output is de-energized: no connection to the safety supervisor."
    assert "appliance-safety" in insight["advice"]
    health = Health()
    status["estop"] = {"state": "tripped", "phase": "starting", "reason": "waiting for a heartbeat"}
    assert health.assess(status, T0) == []  # the supervisor starts before the runtime
    assert only(health.assess(status, T0 + 31))["id"] == "estop-starting"


@pytest.mark.parametrize(("lag", "severity"), [(99.0, None), (150.0, "warning"), (1500.0, "critical")])
def test_loop_lag(lag: float, severity: str | None) -> None:
    status = healthy(T0)
    status["runtime"]["loop_lag_ms"] = lag
    found = Health().assess(status, T0)
    assert [i["severity"] for i in found] == ([severity] if severity else [])
    if found:
        assert found[0]["message"] == f"The runtime's event loop is running {lag:.0f} ms late (over 100 ms)."


# Across calls


def troubled(now: float) -> dict[str, Any]:
    status = healthy(now)
    status["sensors"][0].update(quality="stale", ts=T0 - 1000)
    status["runtime"]["loop_lag_ms"] = 400.0
    status["disk"]["free_mb"] = 600.0
    status["estop"].update(state="tripped", phase="tripped", reason="manual trip by admin", since=T0 - 5)
    status["sync"]["oldest_s"]["important"] = 700.0
    return status


def test_since_is_stable_and_the_worst_comes_first() -> None:
    health = Health()
    first = health.assess(troubled(T0), T0)
    assert_well_formed(first)
    assert [i["severity"] for i in first] == ["critical", "critical", "warning", "warning", "warning"]
    for t in range(1, 200, 3):
        again = health.assess(troubled(T0 + t), T0 + t)
        assert [(i["id"], i["since"]) for i in again] == [(i["id"], i["since"]) for i in first]


def test_memory_stays_bounded_with_changing_sensors_and_services() -> None:
    health = Health()
    base = troubled(T0)
    for call in range(3000):
        now = T0 + call * 0.3
        status = copy.deepcopy(base)
        status["sensors"] = [
            {"id": f"dev-{call}.ch{k}", "device": f"dev-{call}", "channel": f"ch{k}", "ts": now - 400 * k,
             "quality": "stale" if k else "ok", "value": 1.0, "unit": ""}
            for k in range(4)
        ]  # fmt: skip
        status["services"][f"modbus:dev-{call}"] = service(failures={"timeout": call}, overruns=call)
        status["sync"]["backlog"]["normal"] = call
        health.assess(status, now)
    assert health.remembered() < 100


def test_latency_budget_is_a_positive_qc_setting() -> None:
    settings = {"model": "m.tflite", "labels": ["ok"], "camera": {"type": "file", "uri": "parts.mp4"}}
    assert QcSettings.model_validate(settings).latency_budget_ms == 100.0
    assert QcSettings.model_validate({**settings, "latency_budget_ms": 40.0}).latency_budget_ms == 40.0
    with pytest.raises(ValidationError, match="latency_budget_ms"):
        QcSettings.model_validate({**settings, "latency_budget_ms": 0.0})
