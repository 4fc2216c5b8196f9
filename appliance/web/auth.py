"""The admin credential: made on first start, shown once, kept only as an scrypt hash (mode 0600, the service
user's: appliance/ops/secrets.py).
Requests prove it with `Authorization: Bearer CREDENTIAL` (or Basic `admin:CREDENTIAL`), or by a login
session (appliance/web/access.py); how many attempts are checked: appliance/web/attempts.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from appliance.ops.secrets import create_secret, read_secret

CREDENTIAL_FILE = "admin-credential.json"
USER = "admin"
SESSION_COOKIE = "appliance_session"
CSRF_HEADER = "X-CSRF-Token"
SCRYPT = {"n": 1 << 14, "r": 8, "p": 1}


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
        return self.known(plain) or self.slow_check(plain)

    def known(self, plain: str) -> bool:
        """Whether `plain` is a credential verified since the start: a keyed hash, no scrypt."""
        return self._mark(plain) in self._verified

    def slow_check(self, plain: str) -> bool:
        """`plain` against the stored scrypt hash (16 MB and tens of milliseconds of a core)."""
        if hmac.compare_digest(_scrypt(plain, self.salt), self.digest):
            self._verified.add(self._mark(plain))
            return True
        return False

    def _mark(self, plain: str) -> bytes:
        return hmac.new(self._key, plain.encode(), hashlib.sha256).digest()


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
