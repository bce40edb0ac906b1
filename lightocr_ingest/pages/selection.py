"""Page selection strings such as ``"1-3,7"`` or ``"5-"``: 1-based, inclusive, in order."""

from __future__ import annotations

import re

_PART = re.compile(r"^\s*(\d*)\s*(-?)\s*(\d*)\s*$")


def parse_page_selection(selection: str | None, page_count: int) -> list[int]:
    """Return the 1-based page numbers that ``selection`` names, sorted, without repeats.

    ``None`` or ``""`` selects every page. ``"3-"`` runs to the last page, ``"-3"`` from the
    first. Pages past the end are dropped (a selection is often written once for many files
    of different lengths); a malformed part raises ``ValueError`` saying what is accepted.
    """
    if selection is None or not str(selection).strip():
        return list(range(1, page_count + 1))
    chosen: set[int] = set()
    accepted = "each part must be N, N-M, N- or -M with 1-based page numbers, e.g. '1-3,7'"
    for part in str(selection).split(","):
        match = _PART.match(part)
        if not match or not (match.group(1) or match.group(3)):
            raise ValueError(f"bad page selection {selection!r}: {accepted}")
        first_text, dash, last_text = match.groups()
        first = int(first_text) if first_text else 1
        last = (int(last_text) if last_text else page_count) if dash else first
        if first < 1 or last < first:
            raise ValueError(f"bad page selection {selection!r}: {part.strip()!r} is empty; {accepted}")
        chosen.update(range(first, min(last, page_count) + 1))
    return sorted(chosen)


def format_page_selection(pages: list[int]) -> str:
    """The inverse of ``parse_page_selection``: ``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    parts: list[str] = []
    start = prev = None
    for page in sorted(set(pages)):
        if start is not None and page == prev + 1:
            prev = page
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev > start else str(start))
        start = prev = page
    if start is not None:
        parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(parts)
