"""Who may do what over HTTP (docs/web.md, Access control).

- Reading (the status, events, evidence, metrics, the live stream): as `[http] status_login` says; by
  default loopback clients read freely and everyone else logs in.
- Control (trip, reset, logout): the admin only, always.
- A browser logs in with the admin credential (`POST /api/v1/login`) and gets a session cookie (HttpOnly,
  SameSite=Strict, Secure over HTTPS) and a CSRF token; a control request on the cookie must carry the
  token in `X-CSRF-Token`. Scripts send `Authorization: Bearer CREDENTIAL` on each request instead.
- Attempts with a password the box has not seen right are limited per client and in total, and few are
  checked at once (appliance/web/attempts.py); each login, failure and refusal is in the audit log
  (appliance/ops/audit.py).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance.ops import audit
from appliance.web import answers
from appliance.web.attempts import MAX_CHECKS, MAX_FAILURES, LoginAttempts
from appliance.web.auth import CSRF_HEADER, SESSION_COOKIE, USER, AdminCredential, presented
from appliance.web.openapi import Operation, api
from appliance.web.sessions import Session, Sessions

MAX_PASSWORD = 256


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: the admin (by session or by credential) or nobody in particular."""

    admin: bool
    session: Session | None = None  # set when proven by the session cookie


ANONYMOUS = Caller(admin=False)


def refused(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class Access:
    """The checks every route uses; `routes()` are login, logout and session."""

    def __init__(
        self,
        credentials: Callable[[], AdminCredential | None],
        status_login: str = "remote",
        secure_cookies: bool = False,
        session_hours: float = 12.0,
        on_login: Callable[[], None] = lambda: None,
    ) -> None:
        self.credentials = credentials
        self.status_login = status_login
        self.secure_cookies = secure_cookies
        self.sessions = Sessions(session_hours * 3600)
        self.attempts = LoginAttempts()
        self.on_login = on_login  # each time the credential proves right (the runtime: its first file)

    async def caller(self, request: Request) -> Caller | Response:
        """Who is asking: a session cookie, else an Authorization header; a refusal when a credential was
        presented and is wrong (counted), or the client is blocked."""
        session = self.sessions.find(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return Caller(admin=True, session=session)
        plain = presented(request.headers.get("authorization", ""))
        if plain is None:
            return ANONYMOUS
        wrong = refused(401, "wrong credential", **{"WWW-Authenticate": 'Bearer realm="appliance"'})
        return await self._proven(request, plain, wrong, "bearer") or Caller(admin=True)

    async def _proven(self, request: Request, plain: str, wrong: Response, how: str) -> Response | None:
        """None if `plain` is the admin credential; else the refusal. The attempt takes its place in the
        counts before the check, so attempts in flight cannot outrun them; a credential verified since
        the start gets in without a check, while the budget of checks is spent too."""
        credential = self.credentials()
        if credential is None:
            return refused(503, "no admin credential on this box yet")
        client = client_address(request)
        ticket = self.attempts.take(client)
        if ticket is None:
            audit.login_refused(client, how, f"{MAX_FAILURES} failed attempts within a minute")
            return too_many(self.attempts.retry_after(client), "too many failed attempts from this address")
        if credential.known(plain):
            right = True
        elif not self.attempts.check(ticket):
            audit.login_refused(client, how, f"{MAX_CHECKS} wrong passwords checked within a minute")
            return too_many(self.attempts.retry_after(), "too many failed logins on this box")
        else:
            async with self.attempts.checking:
                right = await asyncio.to_thread(credential.slow_check, plain)
        if not right:
            audit.login_failed(client, how)
            return wrong
        self.attempts.give_back(ticket)
        audit.login_ok(client, how)
        self.on_login()
        return None

    def proven_by(self, request: Request) -> str:
        """How a request the admin made proved it: "session" (its cookie) or "bearer" (the credential)."""
        return "session" if self.sessions.find(request.cookies.get(SESSION_COOKIE)) else "bearer"

    async def read(self, request: Request) -> Response | None:
        """None when the caller may read the status; else the refusal."""
        if self._reads_freely(request):
            return None
        caller = await self._admin(
            request, "log in to read the status (POST /api/v1/login, or Authorization: Bearer CREDENTIAL)"
        )
        return caller if isinstance(caller, Response) else None

    async def _admin(self, request: Request, why: str) -> Caller | Response:
        """The caller if it is the admin; else a refusal: 401 saying `why`, or the caller's own."""
        caller = await self.caller(request)
        if isinstance(caller, Response) or caller.admin:
            return caller
        return refused(401, why, **{"WWW-Authenticate": 'Bearer realm="appliance"'})

    def still_reads(self, request: Request) -> bool:
        """For a live stream let in by `read()`: whether that still holds (its session may have ended)."""
        if self._reads_freely(request):
            return True
        token = request.cookies.get(SESSION_COOKIE)
        return token is None or self.sessions.find(token) is not None  # else a bearer, still valid

    def _reads_freely(self, request: Request) -> bool:
        return self.status_login == "never" or (self.status_login == "remote" and is_loopback(request))

    async def control(self, request: Request) -> Response | None:
        """None when the caller is the admin and, on a session, sent the session's CSRF token."""
        caller = await self._admin(
            request, "authentication required: log in, or send Authorization: Bearer <admin credential>"
        )
        if isinstance(caller, Response):
            return caller
        if caller.session is not None:
            token = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(token.encode(), caller.session.csrf.encode()):
                return refused(403, f"CSRF token missing or wrong: send the session's token in {CSRF_HEADER}")
            if not same_origin(request):
                return refused(403, "cross-origin request refused")
        return None

    @api(
        post=Operation(
            f"Log in with the admin credential: sets the {SESSION_COOKIE} cookie",
            answers.LoggedIn,
            errors=(400, 401, 429, 503),
            body=answers.Login,
        )
    )
    async def login(self, request: Request) -> Response:
        password = await password_of(request)
        if isinstance(password, Response):
            return password
        wrong = refused(401, "wrong user or password")
        if (refusal := await self._proven(request, password, wrong, "session")) is not None:
            return refusal
        token, session = self.sessions.open()
        response = JSONResponse(
            {"user": USER, "csrf": session.csrf, "expires_in_s": self.sessions.lifetime_s}
        )
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(self.sessions.lifetime_s),
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
        )
        return response

    @api(
        post=Operation("End the session", answers.LoggedOut, errors=(401, 403, 429, 503), security="control")
    )
    async def logout(self, request: Request) -> Response:
        if (refusal := await self.control(request)) is not None:
            return refusal
        self.sessions.close(request.cookies.get(SESSION_COOKIE))
        audit.logout(client_address(request))
        response = JSONResponse({"user": None})
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict", secure=self.secure_cookies)
        return response

    @api(
        get=Operation(
            "Whether the caller is logged in, its CSRF token, whether reading needs a login",
            answers.Session,
            errors=(401, 429, 503),
        )
    )
    async def session(self, request: Request) -> Response:
        """What the page needs to know: logged in or not, the CSRF token, whether reading needs a login."""
        caller = await self.caller(request)
        if isinstance(caller, Response):
            return caller
        read_needs_login = not self._reads_freely(request)
        return JSONResponse(
            {
                "user": USER if caller.admin else None,
                "csrf": caller.session.csrf if caller.session else None,
                "read_needs_login": read_needs_login,
            },
            headers={"Cache-Control": "no-store"},
        )

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/login", self.login, methods=["POST"]),
            Route("/api/v1/logout", self.logout, methods=["POST"]),
            Route("/api/v1/session", self.session, methods=["GET"]),
        ]


async def password_of(request: Request) -> str | Response:
    """The password of a login body: JSON {"password": "..."} (a "user" key, if any, must be admin)."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("password"), str):
        return refused(400, 'body: expected JSON such as {"user": "admin", "password": "..."}')
    if body.get("user", USER) != USER:
        return refused(401, "wrong user or password")
    if not 0 < len(body["password"]) <= MAX_PASSWORD:
        return refused(400, f"password: 1 to {MAX_PASSWORD} characters")
    return str(body["password"])


def too_many(seconds: int, why: str) -> JSONResponse:
    return refused(429, f"{why}; try again in {seconds} s", **{"Retry-After": str(seconds)})


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def is_loopback(request: Request) -> bool:
    return is_loopback_host(client_address(request))


def is_loopback_host(host: str) -> bool:
    """An address of this machine only (127.0.0.0/8, ::1, localhost); names other than localhost are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(request: Request) -> bool:
    """A browser's Origin, when it sends one, must name this box as the Host header does."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
