"""Reads of committed events on a connection of their own (WAL lets readers run beside the writer)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any


def reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the store's file."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def events(path: Path, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    with contextlib.closing(reader(path)) as conn:
        rows = conn.execute(
            "SELECT id, ts, kind, severity, source, message, data FROM events WHERE " + where, params
        ).fetchall()
    return [
        {
            "id": r[0],
            "ts": r[1],
            "kind": r[2],
            "severity": r[3],
            "source": r[4],
            "message": r[5],
            "data": json.loads(r[6]),
        }
        for r in rows
    ]
