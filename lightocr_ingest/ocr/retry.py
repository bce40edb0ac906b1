"""When and how long to wait before sending a failed request again (pure functions).

Retried: connection errors, timeouts, HTTP 408, 409, 429 and 5xx, the failures a restarting
or overloaded vLLM produces. Not retried: other 4xx, which mean the request itself is wrong
(a bad API key, a model name the server does not serve) and would fail again.
Waits grow exponentially with full jitter, so that 64 pages that failed together do not come
back together, and a server's ``Retry-After`` wins over our own guess.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import openai

from ..defaults import BACKOFF_BASE_S, MAX_RETRIES, PAGE_DEADLINE_S

RETRY_STATUS = {408, 409, 429}  # plus every 5xx
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is treated as down; the page deadline decides


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = MAX_RETRIES
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_max_s: float = 30.0
    page_deadline_s: float = PAGE_DEADLINE_S

    def delay(self, retry: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after_s is not None:
            return min(retry_after_s, MAX_RETRY_AFTER_S)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** retry))
        return (rng or random).uniform(ceiling / 2, ceiling)  # "equal jitter": never zero, never in lockstep


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_of(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError)):
        return True  # connection refused or dropped, timeouts, a garbled answer
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return False


def describe(exc: BaseException) -> str:
    """One line for the report: what went wrong with a request.

    What happened is told by the first cause of the chain (the transport's own exception): the
    aiohttp transport reports any broken connection, a refused one or one dropped mid-answer,
    as a connect timeout.
    """
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        causes = []
        cause = exc.__cause__
        while cause is not None and len(causes) < 8:
            causes.append(cause)
            cause = cause.__cause__
        root = causes[-1] if causes else None
        if isinstance(exc, openai.APITimeoutError) and (
                root is None or isinstance(root, TimeoutError) or "Timeout" in type(root).__name__):
            return "request timed out"
        return f"connection failed ({type(root).__name__ if root else 'no answer'})"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return f"{type(exc).__name__}: {exc}"


class PageClock:
    """The per-page deadline. It starts with the page's first request, not while it queues."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def remaining(self) -> float:
        return self.seconds if self.started is None else self.seconds - (time.monotonic() - self.started)
