"""Errors a user can act on: each names the file (and page) and says what to do.

A batch never stops for one bad file: the readers catch these per file or per page,
report them and go on. Their text is one line, so it reads well in a log and a report.
"""

from __future__ import annotations


class LightOCRError(Exception):
    """Base class of the errors this package raises on purpose."""


class InputError(LightOCRError):
    """A file (or one page of it) that cannot be read: corrupt, encrypted, unsupported..."""

    def __init__(self, file: str, cause: str, page: int | None = None, hint: str | None = None):
        self.file = str(file)
        self.page = page
        self.cause = cause
        self.hint = hint
        where = self.file if page is None else f"{self.file}, page {page}"
        text = f"{where}: {cause}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class OCRServerError(LightOCRError):
    """The OCR server is unreachable or answered in a way the client cannot use."""


class ConfigError(LightOCRError):
    """A pipeline config that does not validate; the text names the field and the fix."""
