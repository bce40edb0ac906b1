"""How well a page's Markdown keeps its text layer: word recall and reading order.

Used by the text-layer engine's tests and by ``benchmarks/text_layer.py``.

- **Word recall**: the share of the layer's own words (as PDFium lists them, a word broken
  across lines at a hyphen mended) found in the Markdown, counted with multiplicity, once
  the Markdown's syntax is taken off (heading marks, list marks, escapes, HTML tags).
- **Reading order**: olmOCR-bench's order test over a whole page: the layer's text cut into
  sentences in the order the typesetter drew them; of each two consecutive sentences that
  are both found in the Markdown, the share found in the same order. The typesetter's order
  is the reference: TeX draws a two-column page column by column, so it is the order the
  page is read in (for pages drawn in another order, build the reference by hand).
"""

from __future__ import annotations

import html
import re
from collections import Counter

MIN_SENTENCE_WORDS = 5  # shorter "sentences" (labels, numbers) are found anywhere and say nothing of order
PROBE_CHARS = 40  # a sentence is looked for by its first characters (its end may be cut by a column or a float)
_TAG = re.compile(r"</?(table|tr|td|th|thead|tbody)>")
_ESCAPE = re.compile(r"^((?:- |\d{1,3}[.)] )?)\\(?=[#>+*=_`~|<\d-])")  # at a block's or an item's start
_SYNTAX = re.compile(r"^(#{1,6} |- )")  # a numbered item's number is the layer's own
# letters, digits, and each other character: "16x16" and "16 x16" are the same tokens
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\s]")
_DASH_ITEM = re.compile(r"(^|\n)[*\u2013\u2014-](?=[ \t])")  # as the reader's list rule (text_markdown._BULLET)


def plain_words(markdown: str) -> list[str]:
    """The Markdown's words with its syntax taken off: heading and list marks and escapes
    outside code blocks (a block that starts like Markdown syntax is escaped with a
    backslash: the only escape the text-layer engine writes), fences, table tags."""
    kept, fenced = [], False
    for line in markdown.split("\n"):
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        kept.append(line if fenced else _ESCAPE.sub(r"\1", _SYNTAX.sub("", line)))
    return html.unescape(_TAG.sub(" ", "\n".join(kept))).split()


BULLETS = {"\u2022", "\u25e6", "\u25aa", "\u2023", "\u2219", "\u00b7", "\u25cf", "\u25cb", "\u25a0", "\u25a1"}


def layer_words(text: str) -> list[str]:
    """A layer's words (``PageWords.text``): a word broken across lines, written "Se-" then
    "bastian" after a line break, stands mended as "Sebastian"; a bullet glyph on its own is
    left out (it becomes Markdown's list mark); a character PDFium lists as two halves of a
    surrogate pair (math italic letters) is one character."""
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _DASH_ITEM.sub(r"\1", text)  # a dash that opens a line as its bullet becomes the list mark too
    return [w for w in re.sub(r"(\w)-\n(\w)", r"\1\2", text).split() if w not in BULLETS]


def tokens(words: list[str]) -> list[str]:
    """Words as runs of letters, runs of digits, and each other character: where the
    spaces fall is not judged, as PDFium puts a space between a listing's glyphs wherever
    they sit a little apart ("- expect - return" for the page's "-expect-return")."""
    return [token for word in words for token in _TOKEN.findall(word)]


def word_recall(layer_text: str, markdown: str) -> float:
    """The share of the layer's words (``tokens``) found in the Markdown (with multiplicity)."""
    want = Counter(tokens(layer_words(layer_text)))
    have = Counter(tokens(plain_words(markdown)))
    total = sum(want.values())
    return sum(min(count, have[word]) for word, count in want.items()) / total if total else 1.0


def _normal(text: str) -> str:
    """Letters and digits only: neither punctuation nor where the spaces fall is judged."""
    return re.sub(r"[\W_]", "", text.lower())


def sentences(text: str) -> list[str]:
    """The text's sentences of at least ``MIN_SENTENCE_WORDS`` words, in order."""
    flat = re.sub(r"(\w)-\n(\w)", r"\1\2", text).replace("\n", " ")
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat) if len(s.split()) >= MIN_SENTENCE_WORDS]


def reading_order(layer_text: str, markdown: str) -> tuple[float, int]:
    """(share of consecutive sentence pairs in order, pairs judged)."""
    page = _normal(" ".join(plain_words(markdown)))
    found = []
    for sentence in sentences(layer_text):
        probe = _normal(sentence)[:PROBE_CHARS]
        at = page.find(probe) if len(probe) >= 20 else -1
        if at >= 0 and page.find(probe, at + 1) < 0:  # found once: a repeated phrase places nothing
            found.append(at)
    pairs = list(zip(found, found[1:]))
    return (sum(a < b for a, b in pairs) / len(pairs) if pairs else 1.0), len(pairs)
