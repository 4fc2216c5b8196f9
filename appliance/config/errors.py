"""Turn validation errors into `FILE: key.path: problem` lines a person can act on."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from appliance.tomlfile import key_name, shorten

_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "an array",
    "tuple_type": "an array",
}

_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list):
        return "array"
    if isinstance(value, datetime.date | datetime.time):
        return "date/time"
    return type(value).__name__


def key_path(loc: Sequence[int | str], raw: object) -> str:
    """`devices.press-1.registers[2].scale` from a pydantic location.

    Pydantic puts the tag of a discriminated union into the location (`devices.x.modbus_tcp.port`);
    walking the parsed TOML alongside drops those parts, since they are not keys the user wrote.
    """
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        if isinstance(node, Mapping) and item not in node and node.get("type") == item:
            continue
        key = key_name(item)
        parts.append(key if not parts else f".{key}")
        node = node.get(item) if isinstance(node, Mapping) else None
    return "".join(parts) or "(top level)"


def shown(value: object) -> str:
    """A value as the file wrote it, cut to what a person needs to find it."""
    return shorten(repr(value))


def problem(error: ErrorDetails) -> str:
    """What is wrong, in the words of the config file rather than of the validator."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing (required)"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {toml_type(value)} {shown(value)}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"out of range: must be {_BOUNDS[kind]} {limit}, got {shown(value)}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')}, got {shown(value)}"
    if kind == "union_tag_invalid":
        return f"unknown type {shown(ctx.get('tag'))}; known types: {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "missing key 'type' that says which kind this is"
    if kind == "string_pattern_mismatch":
        return f"{shown(value)} does not match the pattern {ctx.get('pattern')}"
    if kind == "finite_number":  # TOML has nan and inf; no setting means them
        return f"must be a finite number, got {shown(value)}"
    if kind in ("too_short", "too_long"):
        return error["msg"].replace("List", "array").replace("Value", "value")
    if kind == "value_error":
        return shorten(str(ctx.get("error", error["msg"])), 300)
    return shorten(error["msg"], 300)


def describe(exc: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    """One `key.path: problem` line per error."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if error["type"] == "union_tag_invalid":
            loc.append("type")
        lines.append(f"{key_path(loc, raw)}: {problem(error)}")
    return lines
