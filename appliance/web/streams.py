"""The live streams (GET /api/v1/stream): the status as server-sent events every STREAM_INTERVAL_S, for as
long as the client stays, capped in total and per client address so that one client cannot take them all."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from appliance.status.document import Status

STREAM_INTERVAL_S = 1.0


class LiveStreams:
    """The streams open now, in all and by client address."""

    def __init__(self, most: int, most_per_client: int) -> None:
        self.most, self.most_per_client = most, most_per_client
        self.by_client: collections.Counter[str] = collections.Counter()

    @property
    def open(self) -> int:
        return self.by_client.total()

    def answer(self, client: str, status: Callable[[], Status], allowed: Callable[[], bool]) -> Response:
        """The stream for `client`, its slot taken now (so that requests at once cannot all pass the
        count); or the refusal: 429 over the client's own share, 503 when all are taken."""
        if self.by_client[client] >= self.most_per_client:
            error = f"{self.most_per_client} live streams open from this address already"
            return JSONResponse({"error": error}, status_code=429, headers={"Retry-After": "10"})
        if self.open >= self.most:
            return JSONResponse({"error": f"{self.most} live streams open already"}, status_code=503)
        self.by_client[client] += 1
        return _Stream(lambda: self._release(client), _events(status, allowed))

    def _release(self, client: str) -> None:
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]


class _Stream(StreamingResponse):
    """A stream that gives its slot back however it ends, even before its first event."""

    def __init__(self, release: Callable[[], None], events: AsyncIterator[str]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def _events(status: Callable[[], Status], allowed: Callable[[], bool]) -> AsyncIterator[str]:
    """Until the client goes, or what let it in no longer holds (a logout): then the browser reconnects,
    is refused, and the page asks for a login."""
    yield f"retry: {int(STREAM_INTERVAL_S * 2000)}\n\n"  # how soon a browser reconnects
    while allowed():
        yield f"event: status\ndata: {status().model_dump_json()}\n\n"
        await asyncio.sleep(STREAM_INTERVAL_S)
