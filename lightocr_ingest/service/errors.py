"""API errors: one JSON shape, the right status, a suggestion, and the request id.

``{"error": {"code", "message", "suggestion", "request_id"}}``. Bad input is never a bare 500:
the reader's ``InputError`` (corrupt, encrypted, empty, unsupported) maps to a code here.
"""

from __future__ import annotations

from ..errors import InputError


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str, suggestion: str = "",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.suggestion = status, code, message, suggestion
        self.headers = headers or {}


def envelope(code: str, message: str, suggestion: str, request_id: str) -> dict:
    return {"error": {"code": code, "message": message, "suggestion": suggestion, "request_id": request_id}}


def from_input_error(error: InputError, name: str) -> ServiceError:
    """The API error for a file the reader refused; ``name`` is the upload's name (never a path)."""
    cause = error.cause
    where = name if error.page is None else f"{name}, page {error.page}"
    if "unsupported file type" in cause:
        return ServiceError(415, "unsupported_type", f"{where}: {cause}", error.hint or "upload a PDF or an image")
    if "empty" in cause and "0 bytes" in cause:
        return ServiceError(400, "empty_file", f"{where}: the upload is empty", "upload the file again")
    if "encrypted" in cause:
        return ServiceError(422, "encrypted", f"{where}: {cause}",
                            "remove the password (qpdf --decrypt) and upload it again")
    return ServiceError(422, "corrupt_file", f"{where}: {cause}",
                        error.hint or "check that the file opens in a viewer, then upload it again")


def overloaded(retry_after_s: int, what: str) -> ServiceError:
    return ServiceError(429, "overloaded", f"{what}: the service is at its limit",
                        f"retry after {retry_after_s} s (Retry-After)", {"Retry-After": str(retry_after_s)})
