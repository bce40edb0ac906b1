"""How an exception becomes an answer: every error is the envelope of ``errors.py`` with the
right status, a suggestion and the request id, never FastAPI's or Starlette's own shapes.

``install_error_handlers(app)`` registers the handlers; ``error_response`` is the one way to
answer with an error, used by them, the middleware and the routes.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ServiceError, envelope


def error_response(request: Request, status: int, code: str, message: str, suggestion: str,
                   headers: dict | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    return JSONResponse(envelope(code, message, suggestion, request_id), status_code=status,
                        headers={**(headers or {}), "X-Request-ID": request_id})


async def service_error(request: Request, exc: ServiceError):
    return error_response(request, exc.status, exc.code, exc.message, exc.suggestion, exc.headers)


async def invalid(request: Request, exc: RequestValidationError):
    errors = exc.errors()
    if any(e.get("loc", [None, None])[-1] == "file" and e.get("type") == "missing" for e in errors):
        return error_response(request, 422, "missing_file", "no file in the request",
                              "send the file as multipart form data in a field named 'file'")
    where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in errors)
    return error_response(request, 422, "invalid_request", f"invalid request: {where}",
                          "see /docs for the request's fields")


async def http_error(request: Request, exc: StarletteHTTPException):
    if exc.status_code == 404:
        return error_response(request, 404, "not_found", f"no such route: {request.url.path}", "see /docs")
    if exc.status_code == 405:
        return error_response(request, 405, "method_not_allowed", f"{request.method} is not allowed here",
                              "see /docs")
    if exc.status_code == 400:  # a body that cannot be parsed (broken multipart, bad JSON)
        return error_response(request, 422, "invalid_request", str(exc.detail), "see /docs for the request's fields")
    return error_response(request, exc.status_code, "http_error", str(exc.detail), "see /docs")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
