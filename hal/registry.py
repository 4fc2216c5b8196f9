"""Registries keyed by `type`: the one way a backend, transport or device kind joins the appliance.

An entry is a key (what a config file writes as `type = "..."`), the thing it builds, optionally the
pydantic class that validates its table, and optionally a priority for choosing among entries
automatically (probing GPIO backends, ordering inference runners); entries without one are used only
when named. A new kind is one module that calls `register`: nothing in the core lists the kinds.

The thing may be given as "package.module:attribute", imported on first use, so registering costs no
import: the safety supervisor and `appliance check-config` stay small although the registries name
modules that load paho, OpenCV or LiteRT. This module imports nothing heavy (no pydantic either: the
supervisor imports it through hal.gpio).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownKey(LookupError):
    """A key no entry has; the message names the kind and the known keys."""


def load_object(path: str) -> Any:
    """The attribute named by "package.module:attribute", importing the module."""
    module, sep, attribute = path.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"expected 'package.module:attribute', got {path!r}")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One registered kind."""

    key: str
    target: T | str  # the thing, or where to import it from
    config: type | None = None  # validates its table; its `type` field is Literal[key]
    priority: int | None = None  # higher first when choosing automatically; None: only when named

    def load(self) -> T:
        if isinstance(self.target, str):
            loaded: T = load_object(self.target)
            return loaded
        return self.target


class Registry(Generic[T]):
    """Entries by key, in registration order; `what` names the kind in messages ("GPIO backend")."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Entry[T]] = {}
        self._listeners: list[Callable[[], None]] = []

    def register(
        self, key: str, target: T | str, *, config: type | None = None, priority: int | None = None
    ) -> Entry[T]:
        """Add a kind; a key registered twice is a mistake (two plugins claiming one name), not an update."""
        if key in self._entries:
            raise ValueError(f"{self.what} {key!r} is registered already")
        entry = Entry(key, target, config, priority)
        self._entries[key] = entry
        for listener in list(self._listeners):
            listener()
        return entry

    def unregister(self, key: str) -> None:
        """Remove a kind (tests that register fakes clean up with this)."""
        self._entries.pop(key, None)
        for listener in list(self._listeners):
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every register and unregister (config unions rebuild themselves)."""
        self._listeners.append(listener)

    def entry(self, key: str) -> Entry[T]:
        try:
            return self._entries[key]
        except KeyError:
            raise UnknownKey(f"unknown {self.what} {key!r}; known: {', '.join(self._entries)}") from None

    def get(self, key: str) -> T:
        """The thing registered under `key`, imported when asked for (not cached: a module that failed
        to import, a missing native library, is tried again next time, as before the registry)."""
        return self.entry(key).load()

    def keys(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def configs(self) -> tuple[type, ...]:
        """The config classes of the entries that have one, in registration order."""
        return tuple(e.config for e in self._entries.values() if e.config is not None)

    def by_priority(self) -> list[Entry[T]]:
        """Entries chosen automatically, highest priority first (ties in registration order)."""
        chosen = [e for e in self._entries.values() if e.priority is not None]
        return sorted(chosen, key=lambda e: -(e.priority or 0))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
