"""Reading the TOML file and wording its errors: light enough for the safety supervisor, which reads its own
section without the runtime's config models (appliance/config/ validates the whole file).

A config file is read with limits, since its path is whatever the command line says: a regular file of at
most 1 MiB (not /dev/zero, a FIFO or a terminal), with tables and arrays nested at most 32 levels deep (a
real config nests five). Every refusal is a ConfigError saying what and where, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_CONFIG = EXAMPLES / "bench.toml"

MAX_CONFIG_BYTES = 1 << 20  # the bench's whole world is 12 KiB
MAX_DEPTH = 32  # tables and arrays within one another; a config needs five
SHOWN_CHARS = 60  # of a value or key quoted in a message: enough to recognise it


class ConfigError(Exception):
    """A configuration that cannot be used; `lines` holds one `FILE: key.path: problem` per mistake."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def shorten(text: str, most: int = SHOWN_CHARS) -> str:
    """`text`, cut to `most` characters with an ellipsis and the full length when longer."""
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_name(key: str) -> str:
    """A key as a message names it: bare as TOML writes it, else quoted with its escapes (a key may hold
    a newline or a control character that would break or hide the message), and cut when long."""
    if _BARE_KEY.fullmatch(key):
        return shorten(key, 40)
    return json.dumps(shorten(key, 40))  # ASCII: no character a terminal or splitlines() acts on


_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB" if nbytes % (1 << 20) == 0 else f"{nbytes} bytes"


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes, or ConfigError saying why not.

    Opened without blocking, so a FIFO with no writer is refused rather than waited on, and read no further
    than the limit, so a file that grows (or one of /proc's, which say they are empty) cannot run on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError([f"{path}: is a directory, not {what}"])
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            raise ConfigError([f"{path}: not a regular file ({kind})"])
        if info.st_size > limit:
            raise ConfigError([f"{path}: {info.st_size} bytes; {what} may be at most {_size(limit)}"])
        data = _read_up_to(fd, limit + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ConfigError([f"{path}: more than {_size(limit)}; {what} may be at most that"])
    return data


def _read_up_to(fd: int, most: int) -> bytes:
    chunks, got = [], 0
    while got < most and (chunk := os.read(fd, min(most - got, 1 << 16))):
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or ConfigError for a file that is missing, unreadable, too large, not TOML or nested
    too deeply."""
    try:
        text = read_limited(path, MAX_CONFIG_BYTES, "a config file").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except RecursionError:  # tomllib parses arrays and inline tables recursively: say where instead
        line = _deep_line(text)
        at = f"line {line}: " if line else ""
        raise ConfigError(
            [f"{path}: {at}arrays or inline tables nested more than {MAX_DEPTH} levels deep"]
        ) from None
    if (where := too_deep(data, MAX_DEPTH)) is not None:
        raise ConfigError([f"{path}: {where}: nested more than {MAX_DEPTH} levels deep"])
    return data


def too_deep(data: dict[str, Any], limit: int) -> str | None:
    """The key path of the first table or array nested more than `limit` levels deep, or None. Iterative
    and stopping at the limit, so no depth of nesting costs more than `limit` levels of it."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        node, depth, where = stack.pop()
        if depth > limit:
            return where
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, dict | list):
                part = f"[{key}]" if isinstance(key, int) else f".{key_name(key)}" if where else key_name(key)
                stack.append((value, depth + 1, where + part))
    return None


# what can hold a bracket that nests nothing: strings (multi-line ones first) and comments
_TOKENS = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}\n]',
    re.DOTALL,
)


def _deep_line(text: str) -> int | None:
    """The line where arrays and inline tables first nest more than MAX_DEPTH deep, or None."""
    depth, line = 0, 1
    for token in _TOKENS.finditer(text):
        t = token.group()
        if t in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif t in ("]", "}"):
            depth -= 1
        else:
            line += t.count("\n")
    return None
