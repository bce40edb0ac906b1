"""Errors a user can act on: each names the file (and page) and says what to do.

A batch never stops for one bad file: the readers catch these per file or per page,
report them and go on. Their text is one line, so it reads well in a log and a report.
"""

from __future__ import annotations

from typing import Literal

InputErrorKind = Literal[
    "unreadable",  # not found, a folder, no permission: the path, not the content
    "unsupported",  # a file type the reader does not take
    "empty",  # 0 bytes
    "encrypted",  # a PDF with a password, none or a wrong one given
    "too_large",  # more pixels than are safe to decode (a decompression bomb, a huge page)
    "corrupt",  # anything else the content gets wrong: truncated, no pages, a page that will not render
]


class LightOCRError(Exception):
    """Base class of the errors this package raises on purpose."""


class InputError(LightOCRError):
    """A file (or one page of it) that cannot be read: corrupt, encrypted, unsupported..."""

    def __init__(self, file: str, cause: str, page: int | None = None, hint: str | None = None,
                 kind: InputErrorKind = "corrupt"):
        self.file = str(file)
        self.kind = kind  # what callers tell apart (the service's status codes), never the text
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


class EmptyCollectionError(ConfigError):
    """A search of a collection that is empty or missing: the fix is to ingest into it first
    (the service answers 404 for it, the CLI says the command)."""
