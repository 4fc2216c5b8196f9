"""The admin credential: made on first start, shown once, kept only as an scrypt hash (mode 0600, the service
user's: appliance/ops/secrets.py).
Requests prove it with `Authorization: Bearer CREDENTIAL` (or Basic `admin:CREDENTIAL`), or by a login
session (appliance/web/access.py). Failed attempts are counted per client address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import deque
from pathlib import Path
from typing import Any

from appliance.ops.secrets import create_secret, read_secret

CREDENTIAL_FILE = "admin-credential.json"
USER = "admin"
SESSION_COOKIE = "appliance_session"
CSRF_HEADER = "X-CSRF-Token"
SCRYPT = {"n": 1 << 14, "r": 8, "p": 1}
MAX_FAILURES = 5  # within FAILURE_WINDOW_S, then the address waits for the window to pass
FAILURE_WINDOW_S = 60.0
MAX_CLIENTS = 10_000  # addresses whose failures are remembered


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT, maxmem=64 << 20, dklen=32)


def new_credential() -> tuple[str, dict[str, Any]]:
    """A new credential: its plain text, and the record kept of it (CREDENTIAL_FILE's JSON)."""
    plain = secrets.token_urlsafe(18)
    salt = secrets.token_bytes(16)
    return plain, {"user": USER, "salt": salt.hex(), "scrypt": _scrypt(plain, salt).hex(), "params": SCRYPT}


class AdminCredential:
    """Verifies the admin credential against its stored hash."""

    def __init__(self, salt: bytes, digest: bytes) -> None:
        self.salt, self.digest = salt, digest
        self._verified: set[bytes] = set()  # keyed hashes of credentials verified once (scrypt is slow)
        self._key = secrets.token_bytes(32)
        self.failures: dict[str, deque[float]] = {}

    @classmethod
    def load_or_create(cls, data_dir: Path) -> tuple[AdminCredential, str | None]:
        """The credential, and its plain text if it was made now (to be shown once)."""
        path = data_dir / CREDENTIAL_FILE
        if os.path.lexists(path):  # a link is refused by the reader, never followed
            stored = json.loads(read_secret(path, "the admin credential"))
            return cls(bytes.fromhex(stored["salt"]), bytes.fromhex(stored["scrypt"])), None
        plain, record = new_credential()
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_secret(path, json.dumps(record).encode())
        return cls(bytes.fromhex(record["salt"]), bytes.fromhex(record["scrypt"])), plain

    def verify(self, plain: str) -> bool:
        mark = hmac.new(self._key, plain.encode(), hashlib.sha256).digest()
        if mark in self._verified:
            return True
        if hmac.compare_digest(_scrypt(plain, self.salt), self.digest):
            self._verified.add(mark)
            return True
        return False

    def blocked(self, client: str, now: float | None = None) -> bool:
        """True while `client` has used up its failed attempts."""
        now = time.monotonic() if now is None else now
        failures = self.failures.get(client)
        while failures and now - failures[0] > FAILURE_WINDOW_S:
            failures.popleft()
        return failures is not None and len(failures) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        """Count a failed attempt of `client`."""
        failures = self.failures.setdefault(client, deque())
        failures.append(time.monotonic())
        while len(failures) > MAX_FAILURES:
            failures.popleft()
        if len(self.failures) > MAX_CLIENTS:  # a flood from many addresses: forget the oldest
            del self.failures[next(iter(self.failures))]


def presented(header: str) -> str | None:
    """The credential in an Authorization header: `Bearer CREDENTIAL` or Basic `admin:CREDENTIAL`."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            user, _, plain = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            return None
        return plain if user == USER else None
    return None
