"""Browser sessions of the admin: in memory (a restart logs everyone out), each with its CSRF token, found by
a hash of its cookie's token (the cookie's token itself is not kept)."""

from __future__ import annotations

import collections
import hashlib
import secrets
import time
from dataclasses import dataclass

MAX_SESSIONS = 64  # logged-in browsers at once; the oldest session goes first


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    expires: float  # monotonic seconds


class Sessions:
    """Browser sessions in memory (a restart logs everyone out), keyed by a hash of the cookie's token."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._by_key: collections.OrderedDict[bytes, Session] = collections.OrderedDict()

    def open(self) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), time.monotonic() + self.lifetime_s)
        self._by_key[_key(token)] = session
        while len(self._by_key) > MAX_SESSIONS:
            self._by_key.popitem(last=False)
        return token, session

    def find(self, token: str | None) -> Session | None:
        if not token:
            return None
        key = _key(token)
        session = self._by_key.get(key)
        if session is not None and session.expires < time.monotonic():
            del self._by_key[key]
            return None
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._by_key.pop(_key(token), None)


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
