"""JSON over HTTP(S) to the box and to the bench's fault API, as the admin when a credential is given. A box's
own certificate is self-signed, so it is not checked: the bench is wired to the box it tests."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 5.0


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def request(
    url: str, body: dict[str, Any] | None = None, token: str | None = None, timeout: float = TIMEOUT_S
) -> tuple[int, Any]:
    """GET (no body) or POST a JSON body; the status and the JSON answer (None if it was not JSON). A box
    that does not answer raises OSError."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_context()) as answer:
            return answer.status, _json(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
