"""Failed-login limits against a real server on loopback: concurrency cannot outrun the count per address,
many addresses cannot outrun the box's budget of password checks a minute, few checks run at once, and a
credential the box has verified already still gets in while the budget is spent."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from appliance.web import WebServer
from appliance.web.access import Access
from appliance.web.attempts import MAX_CHECKS, MAX_FAILURES, PASSWORD_CHECKS_AT_ONCE
from appliance.web.auth import AdminCredential
from bench.harness.login_flood import Flood, wrong_logins
from tests.statuses import status

STATUS = status({"device": "box"})
T = TypeVar("T")


class CountedCredential(AdminCredential):
    """The admin credential, counting how many of its slow checks run at once (the most seen)."""

    def __init__(self, salt: bytes, digest: bytes) -> None:
        super().__init__(salt, digest)
        self.running = self.most = 0
        self._count = threading.Lock()

    def slow_check(self, plain: str) -> bool:
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().slow_check(plain)
        finally:
            with self._count:
                self.running -= 1


def new_credential(tmp_path: Path) -> tuple[CountedCredential, str]:
    made, plain = AdminCredential.load_or_create(tmp_path / "data")
    assert plain is not None
    return CountedCredential(made.salt, made.digest), plain


def serving(credential: AdminCredential, body: Callable[[str], T]) -> T:
    """`body(url)` run against a real server on loopback (any 127.0.0.x reaches it)."""
    access = Access(lambda: credential, "always")
    server = WebServer("127.0.0.1", 0, lambda: STATUS, access=access)
    result: list[T] = []

    async def run() -> None:
        await server.start()
        try:
            result.append(await asyncio.to_thread(body, server.url))
        finally:
            await server.stop()

    asyncio.run(run())
    return result[0]


def post(url: str, path: str, source: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    """POST from the loopback address `source`; (status, headers)."""
    target = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(
        target.hostname or "", target.port, timeout=10, source_address=(source, 0)
    )
    try:
        data = json.dumps(body) if body is not None else b""
        connection.request("POST", path, data, headers | {"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        return answer.status, answer.headers
    finally:
        connection.close()


def only_turned_away(flood: Flood) -> bool:
    """Whether every answer but 401 and 429 was a connection the server would not take (a cap on
    connections may refuse some of a flood's): never a login, never a server error."""
    return set(flood.other) <= {
        "503",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "RemoteDisconnected",
        "BrokenPipeError",
    }


def test_fifty_concurrent_wrong_logins_from_one_address_get_five_checks(tmp_path: Path) -> None:
    credential, _ = new_credential(tmp_path)
    flood: Flood = serving(credential, lambda url: wrong_logins(url, 2.0, concurrency=50, addresses=1))
    assert len(flood.checked) == MAX_FAILURES, flood  # not one more, however many were in flight
    assert len(flood.refused) + sum(flood.other.values()) >= 50 - MAX_FAILURES, flood  # the first 50 at least
    assert only_turned_away(flood), flood.other
    assert credential.most <= PASSWORD_CHECKS_AT_ONCE, f"{credential.most} password checks ran at once"


def test_many_addresses_share_one_budget_of_checks_a_minute(tmp_path: Path) -> None:
    credential, plain = new_credential(tmp_path)

    def body(url: str) -> tuple[Flood, list[tuple[int, Any]]]:
        bearer = {"Authorization": f"Bearer {plain}"}
        assert post(url, "/api/v1/estop/trip", "127.0.0.250", **bearer)[0] == 404  # verified: no line here
        flood = wrong_logins(url, 3.0, concurrency=40, addresses=40)
        answers = [
            post(url, "/api/v1/login", "127.0.0.249", {"password": plain}),  # known: in, budget or not
            post(url, "/api/v1/estop/trip", "127.0.0.248", **bearer),
            post(url, "/api/v1/login", "127.0.0.247", {"password": "another-wrong-one"}),
        ]
        return flood, answers

    flood, answers = serving(credential, body)
    assert flood.most_checked() == len(flood.checked) == MAX_CHECKS, flood
    assert len(flood.refused) + sum(flood.other.values()) >= 40 - MAX_CHECKS, flood
    assert only_turned_away(flood), flood.other
    assert all(0 < int(seconds) <= 60 for seconds in flood.retry_after), flood.retry_after
    assert credential.most <= PASSWORD_CHECKS_AT_ONCE
    (known, _), (tripped, _), (wrong, headers) = answers
    assert known == 200 and tripped == 404  # the known credential got in; there is no stop line to trip
    assert wrong == 429 and 0 < int(headers["Retry-After"]) <= 60


def test_a_fresh_right_password_is_checked_when_the_budget_allows_and_does_not_use_it(
    tmp_path: Path,
) -> None:
    credential, plain = new_credential(tmp_path)

    def body(url: str) -> list[int]:
        codes = [post(url, "/api/v1/login", f"127.0.0.{i}", {"password": f"x{i}"})[0] for i in range(2, 11)]
        codes.append(post(url, "/api/v1/login", "127.0.0.20", {"password": plain})[0])  # fresh: checked
        codes.append(post(url, "/api/v1/login", "127.0.0.21", {"password": "wrong"})[0])  # the tenth
        codes.append(post(url, "/api/v1/login", "127.0.0.22", {"password": "wrong"})[0])  # over budget
        return codes

    assert serving(credential, body) == [401] * 9 + [200, 401, 429]


@pytest.mark.parametrize("address", ["2001:db8:1:2::5", "2001:db8:1:2:ffff::1"])
def test_ipv6_addresses_of_one_network_count_as_one_client(address: str) -> None:
    from appliance.web.attempts import client_key

    assert client_key(address) == "2001:db8:1:2::/64"
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("not an address") == "not an address"


def test_the_limits_forget_a_minute_later() -> None:
    from appliance.web.attempts import LoginAttempts

    attempts = LoginAttempts()
    now = time.monotonic()
    tickets = [attempts.take("192.0.2.1", now) for _ in range(MAX_FAILURES)]
    assert all(tickets) and attempts.take("192.0.2.1", now) is None
    assert attempts.retry_after("192.0.2.1", now + 20) == 40
    assert attempts.take("192.0.2.1", now + 61) is not None  # the minute has passed
