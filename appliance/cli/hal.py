"""`appliance hal`: the hardware report and inference plan as a table a person can read."""

from __future__ import annotations

from hal.report import HardwareReport


def render(report: HardwareReport) -> str:
    board, cpu = report.board, report.cpu
    rows: list[tuple[str, str]] = [
        ("board", f"{board.spec.name} ({board.spec.key})"),
        ("model", board.model),
        ("soc", board.spec.soc + (f", {board.detail}" if board.detail else "")),
        ("cpu", f"{cpu.model}, {cpu.cores} cores, {cpu.architecture}"),
        ("cpu features", ", ".join(cpu.features) or "-"),
        ("memory", f"{report.memory_mb} MB"),
        ("gpio header", board.spec.gpio_chip or "no single chip known: set stop_line.chip"),
    ]
    for disk in report.storage:
        role = ", root filesystem" if disk.holds_root else ""
        rows.append(
            (
                "storage",
                f"{disk.name}: {disk.kind}, {disk.size_gb} GB"
                + (", removable" if disk.removable else "")
                + role,
            )
        )
    if not report.storage:
        rows.append(("storage", "-"))
    for acc in report.accelerators:
        rows.append(
            ("accelerator", f"{acc.spec.name} at {acc.found_at}" + (f" ({acc.detail})" if acc.detail else ""))
        )
        rows.append(("  runs", acc.spec.runs))
    if not report.accelerators:
        rows.append(("accelerator", "none"))
    plan = report.plan
    for rank, backend in enumerate(plan.backends, 1):
        rows.append((f"inference {rank}", f"{backend.kind}: {backend.reason}"))
    rows.append(("model variant", f"{plan.variant}: {plan.variant_reason}"))
    rows += [("note", note) for note in plan.notes]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)
