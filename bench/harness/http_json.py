"""JSON over HTTP to the children: the appliance's status API and the bench world's fault API."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def post_json(url: str, body: dict[str, Any], timeout: float = 5.0) -> None:
    """POST a JSON body, the answer unread; a refusal raises (urllib.error.HTTPError)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout):
        pass
