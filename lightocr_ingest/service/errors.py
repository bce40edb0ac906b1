"""API errors: one JSON shape, the right status, a suggestion, and the request id.

``{"error": {"code", "message", "suggestion", "request_id"}}``. Bad input is never a bare 500:
the reader's ``InputError`` maps to a code here by its ``kind`` (unsupported, empty, encrypted,
or anything else the content gets wrong).
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
    """The API error for a file the reader refused, by the error's ``kind`` (never its text);
    ``name`` is the upload's name (never a path)."""
    cause = error.cause
    where = name if error.page is None else f"{name}, page {error.page}"
    if error.kind == "unsupported":
        return ServiceError(415, "unsupported_type", f"{where}: {cause}", error.hint or "upload a PDF or an image")
    if error.kind == "empty":
        return ServiceError(400, "empty_file", f"{where}: the upload is empty", "upload the file again")
    if error.kind == "encrypted":
        return ServiceError(422, "encrypted", f"{where}: {cause}",
                            "remove the password (qpdf --decrypt) and upload it again")
    # corrupt, too_large (a decompression bomb, a huge page), unreadable: the file cannot be read as sent
    return ServiceError(422, "corrupt_file", f"{where}: {cause}",
                        error.hint or "check that the file opens in a viewer, then upload it again")


def overloaded(retry_after_s: int, what: str) -> ServiceError:
    return ServiceError(429, "overloaded", f"{what}: the service is at its limit",
                        f"retry after {retry_after_s} s (Retry-After)", {"Retry-After": str(retry_after_s)})


def too_large(limit_mb: float, name: str | None = None) -> ServiceError:
    """An upload over ``max_upload_mb``: refused while it streams in (``limits.BodyLimit``, before
    a file's name is known) or while it is saved (``uploads.save_upload``, naming the file)."""
    what = f"{name}: the request" if name else "the upload"
    return ServiceError(413, "too_large", f"{what} is over the limit of {limit_mb:g} MB (all its files together)",
                        "split the file or send the files in several requests, or start the service with a "
                        "larger --max-upload-mb")
