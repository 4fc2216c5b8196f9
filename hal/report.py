"""The hardware report: board, CPU, memory, storage, accelerators and the inference plan, in one piece."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hal.accelerators import Accelerator, detect_accelerators
from hal.boards import Board, detect_board
from hal.plan import InferencePlan, plan_inference
from hal.sysroot import SysRoot
from hal.system import Cpu, Disk, detect_cpu, detect_memory_mb, detect_storage


@dataclass(frozen=True, slots=True)
class HardwareReport:
    root: str
    board: Board
    cpu: Cpu
    memory_mb: int
    storage: tuple[Disk, ...]
    accelerators: tuple[Accelerator, ...]
    plan: InferencePlan

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "board": self.board.to_dict(),
            "cpu": self.cpu.to_dict(),
            "memory_mb": self.memory_mb,
            "storage": [d.to_dict() for d in self.storage],
            "accelerators": [a.to_dict() for a in self.accelerators],
            "inference": self.plan.to_dict(),
        }


def detect(root: Path | str = "/") -> HardwareReport:
    """Everything the box is, from files alone under `root`."""
    sysroot = SysRoot(root)
    board = detect_board(sysroot)
    cpu = detect_cpu(sysroot)
    memory_mb = detect_memory_mb(sysroot)
    accelerators = tuple(detect_accelerators(sysroot, board))
    return HardwareReport(
        str(root),
        board,
        cpu,
        memory_mb,
        tuple(detect_storage(sysroot)),
        accelerators,
        plan_inference(cpu, memory_mb, accelerators),
    )
