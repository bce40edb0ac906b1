"""The upload size limit, enforced while the body streams in rather than after it has arrived.

``BodyLimit`` is ASGI middleware, inside the request-id middleware so that its 413 gets the
request id and is counted like any answer. Code that reads an upload itself
(``uploads.save_upload``) raises the same refusal, ``errors.too_large``.
"""

from __future__ import annotations

import json

from .errors import envelope, too_large
from .middleware import request_id_for


class BodyLimit:
    """Refuse a request body over the limit while it streams in, not after: by its
    Content-Length before reading anything, else by counting what arrives. Past the limit the
    app is told the client left (so it stops reading), and its answer is replaced by a 413."""

    def __init__(self, app, limit_bytes: int, limit_mb: float):
        self.app, self.limit, self.limit_mb = app, limit_bytes, limit_mb

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, headers, send)
        seen, over, started = 0, False, False

        async def counting_receive():
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
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
            await self._refuse(scope, headers, send)

    async def _refuse(self, scope, headers: dict, send) -> None:
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = (scope.get("state") or {}).get("request_id") or request_id_for(given)
        error = too_large(self.limit_mb)
        body = json.dumps(envelope(error.code, error.message, error.suggestion, request_id)).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
