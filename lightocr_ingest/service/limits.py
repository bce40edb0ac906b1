"""The upload size limit, enforced while the body streams in rather than after it has arrived,
and a body that stalls: no byte for ``idle_s`` ends the request with 408 (a client cannot hold a
connection and its upload slot open by trickling nothing).

``BodyLimit`` is ASGI middleware, inside the request-id middleware so that its 413 gets the
request id and is counted like any answer. Code that reads an upload itself
(``uploads.save_upload``) raises the same refusal, ``errors.too_large``.
"""

from __future__ import annotations

import asyncio
import json

from .errors import ServiceError, envelope, overloaded, too_large

UPLOADS_RETRY_S = 5  # uploads in flight at their limit: requests are answered in seconds, most of them
from .middleware import request_id_for


class BodyLimit:
    """Refuse a request body over the limit while it streams in, not after: by its
    Content-Length before reading anything, else by counting what arrives. Past the limit the
    app is told the client left (so it stops reading), and its answer is replaced by a 413."""

    def __init__(self, app, limit_bytes: int, limit_mb: float, idle_s: float = 30.0,
                 in_flight_bytes: int | None = None):
        self.app, self.limit, self.limit_mb, self.idle_s = app, limit_bytes, limit_mb, idle_s
        # Bodies being received or held at once: the multipart parser keeps parts of up to 1 MB in
        # memory, so a request can hold its whole body there until it is answered.
        self.in_flight_limit = in_flight_bytes if in_flight_bytes is not None else 4 * limit_bytes
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, headers, send)
        # A body of unknown length may be as large as the limit.
        reserved = int(declared) if declared.isdigit() else self.limit
        if self.in_flight and self.in_flight + reserved > self.in_flight_limit:
            return await self._refuse(scope, headers, send, busy=True)
        self.in_flight += reserved
        try:
            await self._limited(scope, receive, send, headers)
        finally:
            self.in_flight -= reserved

    async def _limited(self, scope, receive, send, headers: dict) -> None:
        seen, over, started = 0, False, False
        stalled = body_done = False

        async def counting_receive():
            nonlocal seen, over, stalled, body_done
            if over:
                return {"type": "http.disconnect"}
            if body_done:  # after the body, receive() waits for a disconnect: no idle limit on that
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_s)
            except TimeoutError:
                stalled = over = True  # answered below with 408, like a body over the limit with 413
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > self.limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if over and not started:
                return  # the app's answer to a "disconnect": ours replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(scope, headers, send, stalled)

    async def _refuse(self, scope, headers: dict, send, stalled: bool = False, busy: bool = False) -> None:
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = (scope.get("state") or {}).get("request_id") or request_id_for(given)
        if busy:
            error = overloaded(UPLOADS_RETRY_S, f"uploads: {self.in_flight / 2**20:.0f} of "
                                                f"{self.in_flight_limit / 2**20:.0f} MB being received or held")
        elif stalled:
            error = ServiceError(408, "body_stalled", f"the request body stalled: no data for {self.idle_s:g} s",
                                 "send the body without pauses, then retry")
        else:
            error = too_large(self.limit_mb)
        body = json.dumps(envelope(error.code, error.message, error.suggestion, request_id)).encode()
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()), (b"connection", b"close"),
            *[(name.lower().encode(), value.encode()) for name, value in error.headers.items()]]})
        await send({"type": "http.response.body", "body": body})
