"""The API key: when the settings have one, every /v1 route needs it.

Checked by the request middleware before the body is read (an unauthorised client cannot make
the service take an upload), compared in constant time, and never logged.
"""

from __future__ import annotations

import secrets

from fastapi import Request
from pydantic import SecretStr

KEY_HINT = "send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"


def needs_key(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def authorised(request: Request, api_key: SecretStr | None) -> bool:
    if api_key is None:
        return True
    expected = api_key.get_secret_value()
    given = request.headers.get("x-api-key") or ""
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        given = given or bearer[7:].strip()
    return bool(given) and secrets.compare_digest(given.encode(), expected.encode())
