"""Read appliance.toml: every mistake in one pass, each as `FILE: key.path: problem`."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.config.errors import describe
from appliance.config.models import ApplianceConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEFAULT_CONFIG = EXAMPLES / "bench.toml"


class ConfigError(Exception):
    """A configuration that cannot be used; `lines` holds one `FILE: key.path: problem` per mistake."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or ConfigError for a file that is missing, unreadable or not TOML."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


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
