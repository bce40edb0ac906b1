"""The HTTP middleware every request goes through: its request id, the API key, latency metrics,
the browser's security headers, and the 500 for a fault of ours.

Every response carries ``X-Request-ID`` (the caller's own when it looks like one, else a new
one), so an error a user reports can be found in the log. Metric labels come from the app's own
routes and methods only: a caller must not mint series.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import Request

from .auth import KEY_HINT, authorised, needs_key
from .handlers import error_response

log = logging.getLogger("lightocr_ingest")

KNOWN_METHODS = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}
# What a browser may do with our answers: load from this origin only (images also as data: URLs,
# the page's own renders), no inline script or style (the web page and /docs have none: their
# scripts are files), never be framed, never sniff a type, send no referrer.
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; " \
      "frame-ancestors 'none'"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")  # a caller's own X-Request-ID is kept when it looks like one


def request_id_for(given: str) -> str:
    """The request id: the caller's ``X-Request-ID`` when it looks like one, else a new one."""
    return given if REQUEST_ID.match(given) else uuid.uuid4().hex


async def request_id_and_metrics(request: Request, call_next):
    service = request.app.state.service
    request.state.request_id = request_id_for(request.headers.get("x-request-id", ""))
    service.metrics.in_flight.inc()
    started = time.perf_counter()
    status = 500
    try:
        if needs_key(request) and not authorised(request, service.settings.api_key):
            # Before the body is read: an unauthorised client cannot make the service take an upload.
            response = error_response(request, 401, "unauthorized", "missing or wrong API key", KEY_HINT,
                                      {"WWW-Authenticate": "Bearer"})
        else:
            response = await call_next(request)
        status = response.status_code
    except Exception:  # noqa: BLE001 - a fault of ours: traceback in the log, request id to the caller
        log.exception("request %s failed", request.state.request_id)
        response = error_response(request, 500, "internal", "internal error",
                                  "try again; if it persists, report the request id")
    finally:
        service.metrics.in_flight.dec()
        route = request.scope.get("route")
        # Label values from the app's own routes and methods only: a caller must not mint series.
        label = getattr(route, "path", None) or "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "other"
        service.metrics.latency.labels(method, label, str(status)).observe(time.perf_counter() - started)
    response.headers["X-Request-ID"] = request.state.request_id
    response.headers["Content-Security-Policy"] = CSP
    response.headers.update(SECURITY_HEADERS)
    return response
