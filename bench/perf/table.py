"""The console table of `bench perf`: each figure with its value, its goal and a verdict (ok, MISS, or
skipped with the reason), what was left out, and a last line counting the goals met, missed and skipped."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

from bench.perf.needs import Section

Row = tuple[str, ...]
HEADER: Row = ("section", "figure", "value", "goal", "measured", "baseline", "unit", "verdict")


def verdict(value: Any, comparison: str, goal: float) -> str:
    if not isinstance(value, int | float):
        return "not a number"
    return "ok" if (value >= goal if comparison == ">=" else value <= goal) else "MISS"


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _rows(name: str, result: dict[str, Any], section: Section | None) -> list[Row]:
    goals = section.goals if section is not None else {}
    figures: dict[str, Any] = result.get("figures") or {}
    left_out: dict[str, str] = result.get("partly_skipped") or {}
    rows: list[Row] = []
    for key in [*figures, *(k for k in goals if k not in figures)]:
        detail = figures.get(key) or {}
        comparison, goal = goals.get(key, ("", None))
        goal_text = f"{comparison} {goal}" if goal is not None else ""
        if key in figures:
            value = result.get(key, detail.get("measured"))
            said = verdict(value, comparison, goal) if goal is not None else ""
            cells = (
                _number(value),
                goal_text,
                str(detail.get("measured", "")),
                str(detail.get("baseline", "")),
            )
            rows.append((name, key, *cells, str(detail.get("unit", "")), said))
            continue
        part = section.part_of(key) if section is not None else None
        if "skipped" in result:
            said = f"skipped: {result['skipped']}"
        elif "error" in result:
            said = "error: the section failed"
        elif part is not None and part.name in left_out:
            said = f"skipped: {left_out[part.name]}"
        else:
            said = "MISS: not reported"
        rows.append((name, key, "-", goal_text, "", "", "", said))
    shown = {part.name for part in (section.parts if section is not None else ()) if part.figures}
    for left, reason in left_out.items():
        if left not in shown:  # a part that only narrows a figure measured without it
            rows.append((name, f"({left})", "", "", "", "", "", f"left out: {reason}"))
    if "error" in result:
        rows.append((name, "(error)", "", "", "", "", "", result["error"]))
    return rows


def table(result: dict[str, Any], sections: Mapping[str, Section]) -> str:
    rows: list[Row] = [HEADER]
    for name, section in result.items():
        if name != "meta":
            rows += _rows(name, section, sections.get(name))
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([*lines, summary(rows[1:])])


def summary(rows: list[Row]) -> str:
    """The goals met, missed, skipped and not measured (a section failed)."""
    counts = collections.Counter(row[-1].split(":")[0] for row in rows if row[3])
    parts = [f"{counts['ok']} met", f"{counts['MISS']} missed", f"{counts['skipped']} skipped"]
    if counts["error"]:
        parts.append(f"{counts['error']} not measured (a section failed)")
    if counts["not a number"]:
        parts.append(f"{counts['not a number']} not a number")
    return "goals: " + ", ".join(parts)
