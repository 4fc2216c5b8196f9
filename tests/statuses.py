"""Status documents for tests: the one a bench box gave (tests/fixtures/status/bench.json), and whole typed
documents made from the few sections a test cares about."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from appliance.status.document import Status
from tests.conftest import ROOT

BENCH = ROOT / "tests/fixtures/status/bench.json"


@functools.cache
def _bench() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(BENCH.read_text())
    return loaded


def bench_document() -> dict[str, Any]:
    """GET /api/v1/status of a bench box 19 s after its start (the QC line had tripped the stop output)."""
    return copy.deepcopy(_bench())


def planned_backend(name: str, threads: int = 1) -> dict[str, Any]:
    """A backend of the inference plan (the `hal` section)."""
    return {
        "backend": name,
        "reason": "",
        "delegate": None,
        "delegate_options": {},
        "runner": "litert",
        "threads": threads,
    }


def bench_status() -> Status:
    return Status.model_validate(bench_document())


@functools.cache
def _quiet() -> dict[str, Any]:
    """The bench box with nothing wrong: the stop output ok, no insight, no reject."""
    doc: dict[str, Any] = bench_document()
    doc["estop"] |= {"state": "ok", "reason": "", "phase": "ok", "latched": False, "history": [], "trips": 0}
    doc["insights"] = []
    for qc in (doc["qc"], doc["services"]["qc"]):
        qc |= {"rejects": [], "active": []}
    return doc


def _merged(base: Any, said: Any) -> Any:
    """`said` over `base`: objects merge key by key, anything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(said, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in said.items()}}
    return copy.deepcopy(said)


def _services(said: Any) -> Any:
    """Just the services said, each completed from the bench box's service of its kind."""
    if not isinstance(said, dict):
        return said
    kinds = {name.partition(":")[0]: section for name, section in _quiet()["services"].items()}
    common = {"running": True, "restarts": 0, "last_error": None}
    return {
        name: _merged(kinds.get(name.partition(":")[0], common), section) for name, section in said.items()
    }


def document(said: dict[str, Any]) -> dict[str, Any]:
    """A whole status document: what a test says over a quiet bench box. Sensors and services are just
    those said (each service completed from the bench box's of its kind); a section said as None is null.
    As in the runtime's, the top-level qc and sync are the qc and sync services: said in either place,
    they are in both."""
    doc: dict[str, Any] = _merged(
        _quiet(), {k: v for k, v in said.items() if k not in ("sensors", "services")}
    )
    doc["sensors"] = copy.deepcopy(said.get("sensors", []))
    doc["services"] = _services(said.get("services", {}))
    if not isinstance(doc["services"], dict):
        return doc
    for name, off in (("qc", None), ("sync", {"tier": "disabled", "backlog": None, "last_ok": None})):
        top, service = said.get(name, {}), doc["services"].get(name)
        if top is None:
            doc[name] = off
        elif service is not None:
            doc[name] = doc["services"][name] = _merged(service, top)
        elif name in said:
            doc["services"][name] = doc[name]
        else:
            doc[name] = off
    return doc


def status(said: dict[str, Any]) -> Status:
    return Status.model_validate(document(said))
