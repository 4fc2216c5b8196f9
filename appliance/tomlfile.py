"""Reading the TOML file and wording its errors: light enough for the safety supervisor, which reads its own
section without the runtime's config models (appliance/config/ validates the whole file)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
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
