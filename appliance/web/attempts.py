"""Login attempts: how many wrong passwords the box checks, per client and in total (docs/web.md, Login
limits).

An attempt takes its place in the counts before its password is checked (`take`), and gives it back only
once the password proved right (`give_back`): a burst of concurrent attempts sees the places the ones
before it took, so concurrency cannot outrun the counts. Per client: MAX_FAILURES a minute. In total,
whatever the mix of addresses: MAX_CHECKS a minute, the budget of scrypt checks of passwords the box has
not seen right before. Only PASSWORD_CHECKS_AT_ONCE checks run at once (scrypt takes 16 MB and a core).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict, deque

MAX_FAILURES = 5  # per client within WINDOW_S; then the client waits until its oldest is a minute old
MAX_CHECKS = 10  # wrong passwords checked within WINDOW_S in total, from every client together
WINDOW_S = 60.0
PASSWORD_CHECKS_AT_ONCE = 1  # each holds 16 MB while it runs; 10 a minute take a second in all
MAX_CLIENTS = 10_000  # clients whose failures are remembered; beyond, the oldest is forgotten
IPV6_PREFIX = 64  # one network hands out a whole /64 to a machine: count it as one client


class Ticket:
    """An attempt's place in the counts: kept if its password was wrong, given back if it was right."""

    __slots__ = ("at", "checked", "client")

    def __init__(self, client: str, at: float) -> None:
        self.client, self.at = client, at
        self.checked = False  # took a place in the budget of checks too


class LoginAttempts:
    """The counts of failed attempts per client and of password checks in total, over the last minute."""

    def __init__(self, max_failures: int = MAX_FAILURES, max_checks: int = MAX_CHECKS) -> None:
        self.max_failures, self.max_checks = max_failures, max_checks
        self._clients: OrderedDict[str, deque[Ticket]] = OrderedDict()
        self._checks: deque[Ticket] = deque()
        self.checking = asyncio.Semaphore(PASSWORD_CHECKS_AT_ONCE)

    def take(self, client: str, now: float | None = None) -> Ticket | None:
        """A place among `client`'s attempts of the last minute; None while it has used them all."""
        now = time.monotonic() if now is None else now
        key = client_key(client)
        mine = self._clients.get(key)
        if mine is not None:
            _expire(mine, now)
            if len(mine) >= self.max_failures:
                return None
        else:
            mine = self._clients[key] = deque()
            while len(self._clients) > MAX_CLIENTS:  # a flood from many addresses: forget the oldest
                self._clients.popitem(last=False)
        ticket = Ticket(key, now)
        mine.append(ticket)
        return ticket

    def check(self, ticket: Ticket, now: float | None = None) -> bool:
        """A place in the budget of password checks for `ticket`'s attempt; False while it is spent (the
        attempt still counts as the client's failure: it was not a password the box knew)."""
        now = time.monotonic() if now is None else now
        _expire(self._checks, now)
        if len(self._checks) >= self.max_checks:
            return False
        ticket.checked = True
        self._checks.append(ticket)
        return True

    def give_back(self, ticket: Ticket) -> None:
        """The attempt proved the credential: it counts neither as a failure nor against the budget."""
        mine = self._clients.get(ticket.client)
        if mine is not None and ticket in mine:
            mine.remove(ticket)
            if not mine:
                del self._clients[ticket.client]
        if ticket.checked and ticket in self._checks:
            self._checks.remove(ticket)

    def retry_after(self, client: str | None = None, now: float | None = None) -> int:
        """Whole seconds until `client` (None: the budget of checks) has a place again."""
        now = time.monotonic() if now is None else now
        held = self._checks if client is None else self._clients.get(client_key(client))
        if not held:
            return 1
        return max(1, math.ceil(held[0].at + WINDOW_S - now))

    def blocked(self, client: str, now: float | None = None) -> bool:
        """Whether `client` has used up its attempts (it would be refused now)."""
        now = time.monotonic() if now is None else now
        mine = self._clients.get(client_key(client))
        if mine is None:
            return False
        _expire(mine, now)
        return len(mine) >= self.max_failures

    def clear(self) -> None:
        self._clients.clear()
        self._checks.clear()


def _expire(tickets: deque[Ticket], now: float) -> None:
    while tickets and now - tickets[0].at >= WINDOW_S:
        tickets.popleft()


def client_key(host: str) -> str:
    """Whom failures are counted against: an IPv4 address, or an IPv6 address's /64 network."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)
