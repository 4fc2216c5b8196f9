"""Reads of committed events on a connection of their own (WAL lets readers run beside the writer), and
of the events still in the journal (the writer's memory), merged by id."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.store.tables import uri


def reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the store's file, from this process (tables.uri)."""
    return sqlite3.connect(uri(path, "ro"), uri=True, check_same_thread=False)


def event(row: Sequence[Any]) -> dict[str, Any]:
    """An events row (id, ts, kind, severity, source, message, data, ...) as the API gives it."""
    return {
        "id": row[0],
        "ts": row[1],
        "kind": row[2],
        "severity": row[3],
        "source": row[4],
        "message": row[5],
        "data": json.loads(row[6]),
    }


def events(path: Path, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    with contextlib.closing(reader(path)) as conn:
        rows = conn.execute(
            "SELECT id, ts, kind, severity, source, message, data FROM events WHERE " + where, params
        ).fetchall()
    return [event(r) for r in rows]


def merged(
    found: list[dict[str, Any]], held: list[dict[str, Any]], limit: int, newest_first: bool
) -> list[dict[str, Any]]:
    """Events of the database and of the journal in id order, each once (a flush may have put one in
    both), at most `limit`. The database's were already cut at `limit`: past its last one, the journal's
    are left out in that direction, so that none is skipped between pages."""
    if not held:
        return found
    by_id = {e["id"]: e for e in held}
    if len(found) >= limit:  # the database had more: its last one is the page's end
        end = found[-1]["id"]
        by_id = {i: e for i, e in by_id.items() if (i > end if newest_first else i < end)}
    by_id.update((e["id"], e) for e in found)
    return [by_id[i] for i in sorted(by_id, reverse=newest_first)][:limit]
