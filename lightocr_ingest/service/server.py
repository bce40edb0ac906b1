"""How the app is served: uvicorn with timeouts that drop half-sent requests, a cap on
connections, a graceful shutdown within the job's grace period, and an access log that never
holds a secret from a query string.

``server_config(app, settings, host, port)`` is what ``lightocr-ingest serve`` runs (and the
tests, so they exercise the same server).
"""

from __future__ import annotations

import asyncio
import logging
import re

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# A query parameter whose name (percent-decoded) says it may be a secret: its value never
# reaches the log. Parameters are split on & and ; as servers do.
SECRET_NAME = re.compile(r"(?i)key|token|secret|passw|pwd|auth|sig|session|jwt|bearer|credential|cookie")
REDACTED = "[redacted]"


def redact(target: str) -> str:
    """A request target with the values of secret-looking query parameters redacted."""
    from urllib.parse import unquote

    path, question, query = target.partition("?")
    if not question:
        return target
    parts = re.split(r"([&;])", query)
    for index in range(0, len(parts), 2):
        name, equals, _ = parts[index].partition("=")
        if SECRET_NAME.search(unquote(name)):
            parts[index] = name + (equals or "=") + REDACTED
    return path + "?" + "".join(parts)


class RedactSecrets(logging.Filter):
    """On uvicorn's access log: ``?api_key=...`` (refused by the service, but sent) is logged redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            record.args = (*record.args[:2], redact(record.args[2]), *record.args[3:])
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())


class HeaderTimeout(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that has not sent a whole request head
    within ``header_timeout_s`` of connecting or of starting one (uvicorn's own keep-alive
    timeout stops counting as soon as a byte arrives, so half-sent headers would hold the
    connection for ever)."""

    header_timeout_s = 10.0  # set per server by ``protocol_with``

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            if self._head_timer is None:
                self._arm()
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._waiting_for_head() and self.conn.trailing_data[0]:
            self._arm()  # a pipelined request's head is partly here: it has the same time as any

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state in (h11.IDLE,) and (self.cycle is None or self.cycle.response_complete)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()


def protocol_with(header_timeout_s: float) -> type[HeaderTimeout]:
    return type("HeaderTimeoutProtocol", (HeaderTimeout,), {"header_timeout_s": header_timeout_s})


def server_config(app, settings, host: str, port: int, log_level: str = "info"):
    import uvicorn

    redact_access_log()
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=protocol_with(settings.header_timeout_s),
        timeout_keep_alive=settings.keep_alive_s, limit_concurrency=settings.max_connections,
        # Requests still open at shutdown (a stream) get a few seconds, then the job its grace.
        timeout_graceful_shutdown=5)
