"""Runaway output: repetition loops, truncated pages and empty answers (pure functions).

Small VLMs sometimes fall into a loop, writing the same few characters or lines until
``max_tokens`` runs out, and LightOnOCR does too (``../shared/LIGHTONOCR.md``: 2 of 10
samples at 6144 tokens). Other answers are empty, or nothing but exclamation marks. This module
judges one answer and trims a loop; ``resilient.py`` decides what to do about it.

A loop is found as the longest stretch of the text that is periodic: the same unit of
1-``MAX_PERIOD`` characters repeated back to back. Legitimate text repeats too (a table of
empty cells, a row of dots in a table of contents), so a loop must be long in absolute terms
and, when the model stopped by itself, make up most of the answer.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np

MAX_PERIOD = 400  # characters in the repeated unit: a looping table row or paragraph fits
MIN_REPEATS = 8  # copies of the unit back to back before it counts as a loop
MIN_LOOP_CHARS = 600  # ~150 tokens of repetition: shorter repeats are ordinary text (dot leaders)
# An answer the model ended itself ("stop") is called a loop only on strong evidence: the loop
# is most of it and long. Trimming a legitimate regular table (rows of empty cells) would lose
# data, while a loop the model broke out of only adds junk, so the doubt goes to the model.
STOP_LOOP_SHARE = 0.8
STOP_LOOP_MIN_CHARS = 2000  # ~500 tokens
COMPRESSIBILITY_GATE = 4.0  # raw/zlib size: ordinary OCR Markdown is 2-3.5; skip the search below it
_WORD = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class Repetition:
    start: int  # character offset where the periodic stretch begins
    end: int  # one past its last character
    period: int  # length of the repeated unit

    @property
    def chars(self) -> int:
        return self.end - self.start

    @property
    def repeats(self) -> float:
        return self.chars / self.period


@dataclass(frozen=True)
class Verdict:
    """What is wrong with an answer (``problem``), and the answer with any loop trimmed."""

    problem: str | None  # None | "loop" | "length" | "empty"
    text: str  # the usable text: trimmed when a loop was found
    repetition: Repetition | None = None

    @property
    def content_chars(self) -> int:
        """Word characters in the usable text: how much of the page an attempt kept."""
        return content_chars(self.text)


def content_chars(text: str) -> int:
    return len(_WORD.findall(text))


def compressibility(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw, 1)))


def find_repetition(text: str, max_period: int = MAX_PERIOD, min_repeats: int = MIN_REPEATS,
                    min_chars: int = MIN_LOOP_CHARS) -> Repetition | None:
    """The longest periodic stretch of ``text`` that is long enough to be a loop, or None.

    For each candidate period p, ``codes[i] == codes[i + p]`` holds all along a stretch
    repeating a unit of p characters; the longest run of such matches is that period's best
    stretch. Vectorised over the text, so each period costs one pass in numpy.
    """
    if len(text) < min_chars:
        return None
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    n = len(codes)
    best: Repetition | None = None
    for period in range(1, min(max_period, n // min_repeats) + 1):
        same = codes[period:] == codes[:-period]
        if not same.any():
            continue
        edges = np.diff(np.concatenate(([0], same.view(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        longest = int(np.argmax(ends - starts))
        span = int(ends[longest] - starts[longest]) + period
        if span < max(min_chars, min_repeats * period):
            continue
        if best is None or span > best.chars:
            start = int(starts[longest])
            best = Repetition(start=start, end=start + span, period=period)
    return best


def trim_repetition(text: str, repetition: Repetition) -> str:
    """Keep the text up to and including one copy of the repeated unit; drop the rest of the loop.

    What follows the loop (when the model broke out of it) is kept.
    """
    head = text[: repetition.start + repetition.period].rstrip()
    tail = text[repetition.end:].strip()
    return head + ("\n\n" + tail if tail else "")


def judge(content: str | None, finish_reason: str | None) -> Verdict:
    """Judge one answer of the model. ``problem`` None means use it as it is."""
    text = content or ""
    if _WORD.search(text) is None:  # no word character at all (counting them all took 0.3 ms a page)
        return Verdict("empty", "")  # nothing, whitespace, or "!!!!!!!!" (a reported vLLM failure)
    truncated = finish_reason == "length"
    repetition = None
    if truncated or compressibility(text) >= COMPRESSIBILITY_GATE:
        repetition = find_repetition(text)
    if repetition is not None and (truncated or (repetition.chars >= STOP_LOOP_SHARE * len(text)
                                                 and repetition.chars >= STOP_LOOP_MIN_CHARS)):
        return Verdict("loop", trim_repetition(text, repetition), repetition)
    if truncated:
        return Verdict("length", text)  # a page denser than max_tokens, or a loop too irregular to see
    return Verdict(None, text)


def best_of(verdicts: list[Verdict]) -> Verdict | None:
    """The attempt that kept most of the page once loops are trimmed; None if all are empty."""
    usable = [v for v in verdicts if v.content_chars > 0]
    return max(usable, key=lambda v: v.content_chars) if usable else None
