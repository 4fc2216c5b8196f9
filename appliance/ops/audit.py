"""The audit log: who logged in, failed to, was refused, logged out; trips and resets asked for on the page
or the API; update uploads and their outcome; every trip and reset of the stop line. One function per kind
of line, all on the logger "appliance.audit" (standard error: the journal on a box; docs/web.md, Audit
log).

Never a secret: no password, credential, token or cookie is ever passed in, and what a client chose (a
trip's reason, an address taken from a proxy's header) is quoted with its control characters escaped, so
it cannot forge a line. A flood cannot fill the journal: failed and refused logins get FLOOD_LINES lines a
minute, then one line at the minute's end says how many more there were; a script that sends the
credential on every request is logged once an hour per address.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict

log = logging.getLogger("appliance.audit")

FLOOD_LINES = 20  # lines of failed and refused logins a minute; the rest are counted
FLOOD_WINDOW_S = 60.0
BEARER_EVERY_S = 3600.0  # a bearer's successful use is logged again after this long (per address)
MAX_SEEN = 1024  # addresses remembered for the above, and counted in a suppressed flood
TEXT_CHARS = 200


class Quota:
    """At most `lines` lines per `window_s`; the lines beyond are counted, with their clients, and said
    in one line when the window ends (a timer: the flood may stop at once)."""

    def __init__(self, what: str, lines: int = FLOOD_LINES, window_s: float = FLOOD_WINDOW_S) -> None:
        self.what, self.lines, self.window_s = what, lines, window_s
        self._lock = threading.Lock()
        self._began = -window_s
        self._said = 0
        self._suppressed = 0
        self._clients: set[str] = set()
        self._timer: threading.Timer | None = None

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._began >= self.window_s and self._timer is None:
                self._began, self._said = now, 0
            if self._said < self.lines:
                self._said += 1
                return True
            self._suppressed += 1
            if len(self._clients) < MAX_SEEN:
                self._clients.add(client)
            if self._timer is None:
                self._timer = threading.Timer(self._began + self.window_s - now, self._summary)
                self._timer.daemon = True
                self._timer.start()
            return False

    def _summary(self) -> None:
        with self._lock:
            count, clients = self._suppressed, len(self._clients)
            self._suppressed, self._clients, self._timer = 0, set(), None
            self._began, self._said = time.monotonic(), 1  # this line is the new window's first
        more = "+" if clients >= MAX_SEEN else ""
        log.warning(
            "%d more %s suppressed in the last %g s (from %d%s clients)",
            count,
            self.what,
            self.window_s,
            clients,
            more,
        )


_failures = Quota("failed or refused logins")
_bearers: OrderedDict[str, float] = OrderedDict()  # address -> when its bearer use was last logged
_bearers_lock = threading.Lock()


def login_ok(client: str, how: str) -> None:
    """The credential proved: `how` is "session" (the login form) or "bearer" (a script's header)."""
    if how == "bearer" and not _bearer_due(client):
        return
    log.info("login ok: client %s, %s", _text(client), how)


def login_failed(client: str, how: str) -> None:
    """A wrong password or credential, checked."""
    if _failures.allow(client):
        log.warning("login failed: client %s, %s, wrong credential", _text(client), how)


def login_refused(client: str, how: str, why: str) -> None:
    """An attempt refused unchecked: its client used its attempts, or the box its checks (`why`)."""
    if _failures.allow(client):
        log.warning("login refused: client %s, %s, %s", _text(client), how, why)


def logout(client: str) -> None:
    log.info("logout: client %s", _text(client))


def trip_asked(client: str, how: str, reason: str, outcome: str) -> None:
    """A trip asked for on the page or the API, and what came of it."""
    log.warning("trip asked: client %s, %s, reason %s: %s", _text(client), how, _quoted(reason), outcome)


def reset_asked(client: str, how: str, outcome: str) -> None:
    """A reset asked for on the page or the API, and what came of it."""
    log.warning("reset asked: client %s, %s: %s", _text(client), how, _text(outcome))


def update_upload(client: str, how: str, outcome: str) -> None:
    """An update bundle uploaded (or refused), and what came of it."""
    log.warning("update upload: client %s, %s: %s", _text(client), how, _text(outcome))


def stop_line(kind: str, change_id: str, reason: str, source: str) -> None:
    """The stop line tripped or was reset, whoever asked (a rule, QC, the page, a late heartbeat)."""
    log.warning(
        "stop line %s: %s (source %s, id %s)", _text(kind), _quoted(reason), _text(source), _text(change_id)
    )


def credential_file_removed(path: str) -> None:
    """The first start's credential file went with the first login that used the credential."""
    log.info("first-start credential file %s deleted: the credential has been used", _text(path))


def _bearer_due(client: str) -> bool:
    now = time.monotonic()
    with _bearers_lock:
        last = _bearers.get(client)
        if last is not None and now - last < BEARER_EVERY_S:
            return False
        _bearers[client] = now
        _bearers.move_to_end(client)
        while len(_bearers) > MAX_SEEN:
            _bearers.popitem(last=False)
        return True


def _text(value: str) -> str:
    """`value` on one line: control characters escaped, cut to TEXT_CHARS."""
    cut = value[:TEXT_CHARS]
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)
    return clean + ("..." if len(value) > TEXT_CHARS else "")


def _quoted(value: str) -> str:
    """`value` in JSON's double quotes, all but printable ASCII escaped, cut to TEXT_CHARS."""
    return json.dumps(value[:TEXT_CHARS]) + ("..." if len(value) > TEXT_CHARS else "")


def reset() -> None:
    """Forget the quotas and the bearers seen (a new runtime in the same process: the tests)."""
    global _failures
    _failures = Quota(_failures.what, _failures.lines, _failures.window_s)
    with _bearers_lock:
        _bearers.clear()
