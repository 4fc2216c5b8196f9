"""Read appliance.toml: every mistake in one pass, each as `FILE: key.path: problem`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.config.errors import describe
from appliance.config.models import ApplianceConfig
from appliance.tomlfile import DEFAULT_CONFIG, EXAMPLES, ConfigError, read_toml

__all__ = ["DEFAULT_CONFIG", "EXAMPLES", "ConfigError", "load_config", "parse_config", "read_toml"]


def parse_config(raw: Mapping[str, Any], source: str, folder: Path | None = None) -> ApplianceConfig:
    """Validate parsed TOML; `source` names the file in errors, `folder` is where relative paths start."""
    try:
        config = ApplianceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{source}: {line}" for line in describe(exc, raw)]) from None
    if problems := config.cross_check(folder):
        raise ConfigError([f"{source}: {path}: {problem}" for path, problem in problems])
    return config


def load_config(path: Path) -> ApplianceConfig:
    return parse_config(read_toml(path), str(path), path.resolve().parent)
