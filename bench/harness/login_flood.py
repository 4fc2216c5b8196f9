"""Wrong logins as fast as the box answers them, from several loopback addresses at once: what an attacker
on the plant's network does to the login route. Counts which attempts the box checked (401) and which it
refused unchecked (429), each with its time, so the bench can find the most checks in any minute."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

LOGIN = "/api/v1/login"


@dataclass
class Flood:
    """What the box answered: the times (seconds since the flood began) of the attempts it checked and of
    those it refused unchecked, and a count of every other answer (an HTTP status, or an error's name)."""

    checked: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    other: Counter[str] = field(default_factory=Counter)
    retry_after: set[str] = field(default_factory=set)  # the Retry-After values the refusals gave

    def most_checked(self, window_s: float = 60.0) -> int:
        """The most attempts checked within any `window_s` (a sliding window over the checked times)."""
        times = sorted(self.checked)
        most, first = 0, 0
        for last, t in enumerate(times):
            while t - times[first] >= window_s:
                first += 1
            most = max(most, last - first + 1)
        return most


def wrong_logins(url: str, seconds: float, concurrency: int, addresses: int) -> Flood:
    """POST wrong passwords to `url`'s login route for `seconds`, from `concurrency` connections at once
    spread over `addresses` source addresses 127.0.0.2, 127.0.0.3, ... (each connection bound to its own
    address, so the box sees that many clients); each connection sends its next attempt once the last is
    answered. The box must listen on loopback."""
    if not 1 <= addresses <= 250:
        raise ValueError(f"addresses: 1 to 250 (127.0.0.2 to 127.0.0.251), got {addresses}")
    target = urllib.parse.urlsplit(url)
    flood, lock = Flood(), threading.Lock()
    began = time.monotonic()
    end = began + seconds

    def attempts(worker: int) -> None:
        source = f"127.0.0.{2 + worker % addresses}"
        connection: http.client.HTTPConnection | None = None
        n = 0
        while time.monotonic() < end:
            n += 1
            body = json.dumps({"user": "admin", "password": f"wrong-{worker}-{n}"})
            try:
                connection = connection or _connect(target, source, end)
                connection.request("POST", LOGIN, body, {"Content-Type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                status, retry_after = answer.status, answer.getheader("Retry-After")
                if answer.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                if connection is not None:
                    connection.close()
                    connection = None
                with lock:
                    flood.other[type(exc).__name__] += 1
                time.sleep(0.01)  # a refused connection comes back at once: no busy loop on it
                continue
            at = time.monotonic() - began
            with lock:
                if status == 401:
                    flood.checked.append(at)
                elif status == 429:
                    flood.refused.append(at)
                    flood.retry_after.add(retry_after or "")
                else:
                    flood.other[str(status)] += 1
        if connection is not None:
            connection.close()

    workers = [threading.Thread(target=attempts, args=(i,), daemon=True) for i in range(concurrency)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
    return flood


def _connect(target: urllib.parse.SplitResult, source: str, end: float) -> http.client.HTTPConnection:
    host, port = target.hostname or "127.0.0.1", target.port or (443 if target.scheme == "https" else 80)
    timeout = max(1.0, end - time.monotonic() + 5)
    if target.scheme == "https":  # the box's own certificate: what is measured is the login, not TLS trust
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(
            host, port, timeout=timeout, source_address=(source, 0), context=context
        )
    return http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0))
