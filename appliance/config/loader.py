"""Read appliance.toml: every mistake in one pass, each as `FILE: key.path: problem`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.config.errors import describe
from appliance.config.models import ApplianceConfig
from appliance.tomlfile import DEFAULT_CONFIG, EXAMPLES, ConfigError, read_toml, shorten

__all__ = ["DEFAULT_CONFIG", "EXAMPLES", "ConfigError", "load_config", "parse_config", "read_toml"]

MAX_LINES = 100  # of mistakes listed: a file of thousands is wrong as a whole, and its start says how


def _lines(source: str, problems: list[str]) -> list[str]:
    lines = [f"{source}: {shorten(p, 400)}" for p in problems[:MAX_LINES]]
    if len(problems) > MAX_LINES:
        lines.append(f"{source}: ... and {len(problems) - MAX_LINES} more mistakes")
    return lines


def parse_config(raw: Mapping[str, Any], source: str, folder: Path | None = None) -> ApplianceConfig:
    """Validate parsed TOML; `source` names the file in errors, `folder` is where relative paths start."""
    try:
        config = ApplianceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_lines(source, describe(exc, raw))) from None
    if problems := config.cross_check(folder):
        raise ConfigError(_lines(source, [f"{path}: {problem}" for path, problem in problems]))
    return config


def load_config(path: Path) -> ApplianceConfig:
    return parse_config(read_toml(path), str(path), path.resolve().parent)
