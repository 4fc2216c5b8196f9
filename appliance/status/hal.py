"""The `hal` section: the board, the accelerators found, the inference plan, CPU, memory and storage, as
the hardware report (hal/report.py) says them."""

from __future__ import annotations

from typing import Annotated

from appliance.status.metric import MIB, Metric
from appliance.status.section import Section
from hal.report import HardwareReport


class BoardInfo(Section):
    key: str
    name: str
    model: str
    soc: str | None
    family: str
    detail: str | None


class AcceleratorInfo(Section):
    key: str
    name: str
    kind: str
    found_at: str
    detail: str | None
    runs: str
    litert_delegate: str | None
    needs_int8: bool


class PlannedBackend(Section):
    backend: str
    runner: str  # the inference runner that loads it (hal/plan.py's INFERENCE_RUNNERS)
    reason: str
    delegate: str | None
    delegate_options: dict[str, str]
    threads: int


class PlanInfo(Section):
    backends: list[PlannedBackend]  # best first
    model_variant: str
    variant_reason: str
    notes: list[str]


class CpuInfo(Section):
    architecture: str
    model: str
    cores: Annotated[int, Metric("appliance_hal_cpu_cores", "CPU cores.")]
    features: list[str]


class DiskInfo(Section):
    name: str
    kind: str
    size_gb: float
    removable: bool
    holds_root: bool


class HalStatus(Section):
    board: BoardInfo
    accelerators: list[AcceleratorInfo]
    inference: PlanInfo
    cpu: CpuInfo
    memory_mb: Annotated[int, Metric("appliance_hal_memory_bytes", "Memory of the board.", MIB)]
    storage: list[DiskInfo]


def hal_section(report: HardwareReport) -> HalStatus:
    """The hardware report as the status shows it (its sysroot, a test's concern, left out)."""
    return HalStatus.model_validate({k: v for k, v in report.to_dict().items() if k != "root"})
