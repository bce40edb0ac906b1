"""Where a chunk's text lies on its pages: Markdown aligned with located words (pure).

The model writes Markdown, not boxes; the page's words with boxes come from elsewhere (the
PDF's text layer, or lines the embedded detector read). This module aligns the two:

1. Both sides become word tokens: Markdown with its markup (HTML tags, LaTeX commands, image
   references, link targets) masked out; located words split at punctuation, NFKC-folded
   (ligatures) and case-folded. A word hyphenated at a line end is joined back when the
   Markdown has the whole word.
2. Tokens are matched by anchors: a run of three tokens found once on each side is a match,
   and matches grow left and right while the tokens agree. Reading order is never assumed,
   so two columns, a table read cell by cell, or a header the model moved all align. Single
   tokens between two matches, and tokens found once on each side, are matched last and
   count as weak.
3. A chunk's regions on a page are the boxes of its matched words, joined line by line into
   rectangles while lines follow each other down one column; a chunk that runs down one
   column and up the next gets two. A weak match away from all strong ones is left out.

When too few of the Markdown's tokens are found among the words (a scan's OCR layer that
does not match the page), the words are not used at all (``trusted`` is False).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from ..records import Box, PageWords, Region

ANCHOR = 3  # tokens in a run that must be unique on both sides to be trusted as a match
MIN_MATCHED_SHARE = 0.5  # share of the Markdown's tokens found on the page for its words to be used
MIN_TOKENS_TO_JUDGE = 8  # fewer Markdown tokens than this: too little to judge a text layer by
LINE_GAP = 1.5  # line heights between lines that may still join one rectangle
_MARKUP = re.compile(
    r"!\[[^\]\n]*\]\([^)\n]*\)"  # image references
    r"|\]\([^)\n]*\)"  # link targets (the link text stays)
    r"|<[^<>\n]+>"  # HTML tags and their attributes
    r"|&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);"  # HTML entities
    r"|\\[A-Za-z]+")  # LaTeX commands
_TOKEN = re.compile(r"\w+")
_HYPHENS = "-\u00ad\u2010\u2011\x02"  # hyphen, soft hyphen, Unicode hyphens, PDFium's soft hyphen


def _fold(text: str) -> str:
    if text.isascii():  # most words: the same result, ten times faster
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def markdown_tokens(markdown: str) -> tuple[list[str], np.ndarray]:
    """Word tokens of Markdown (markup masked) and the character offset of each."""
    masked = _MARKUP.sub(lambda m: " " * len(m.group()), markdown)
    tokens, starts = [], []
    for match in _TOKEN.finditer(masked):
        tokens.append(_fold(match.group()))
        starts.append(match.start())
    return tokens, np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class LocatedTokens:
    tokens: list[str]
    words: list[tuple[int, ...]]  # the located words each token lies on (two for a re-joined hyphenation)


def located_tokens(words: PageWords, wanted: set[str]) -> LocatedTokens:
    tokens: list[str] = []
    owners: list[tuple[int, ...]] = []
    index = 0
    lines = [line.split() for line in words.text.split("\n")]
    for line_number, line in enumerate(lines):
        for position, word in enumerate(line):
            parts = _TOKEN.findall(_fold(word))
            last_of_line = position == len(line) - 1
            if parts and last_of_line and word[-1] in _HYPHENS and line_number + 1 < len(lines) \
                    and lines[line_number + 1]:
                following = _TOKEN.findall(_fold(lines[line_number + 1][0]))
                if following and parts[-1] + following[0] in wanted:
                    tokens.extend(parts[:-1])
                    owners.extend([(index,)] * (len(parts) - 1))
                    tokens.append(parts[-1] + following[0])
                    owners.append((index, index + 1))
                    lines[line_number + 1][0] = _word_rest(lines[line_number + 1][0], following[0])
                    index += 1
                    continue
            tokens.extend(parts)
            owners.extend([(index,)] * len(parts))
            index += 1
    return LocatedTokens(tokens, owners)


def _word_rest(word: str, joined_part: str) -> str:
    """What remains of a line's first word once its first token was joined to the line above,
    behind a marker: the word still counts (so boxes stay in step with words), and only its
    other tokens ("based" of "nition-based") are tokens again."""
    folded = _fold(word)
    at = folded.find(joined_part)
    return "\x00" + (folded[at + len(joined_part):] if at >= 0 else "")


@dataclass(frozen=True)
class PageAlignment:
    """The Markdown tokens of one page, matched (or not) to located words."""

    source: str  # what the words came from: text_layer, ocr_lines or located
    starts: np.ndarray  # character offset of each Markdown token
    matched: list[tuple[int, ...] | None]  # located word indices of each token, or None
    strong: list[bool]
    matched_share: float
    trusted: bool
    words: PageWords
    lines: np.ndarray  # the visual line of each located word (``_line_numbers``)

    def regions(self, page: int, spans: list[tuple[int, int]]) -> list[Region]:
        """The regions on ``page`` of the Markdown text in ``spans`` (character ranges)."""
        strong_words: list[int] = []
        weak_words: list[int] = []
        for start, end in spans:
            first, last = np.searchsorted(self.starts, start), np.searchsorted(self.starts, end)
            for token in range(first, last):
                found = self.matched[token]
                if found is not None:
                    (strong_words if self.strong[token] else weak_words).extend(found)
        return [Region(page, box) for box in _rectangles(self.words, self.lines, strong_words, weak_words)]


def align(markdown: str, words: PageWords) -> PageAlignment:
    """Match the tokens of a page's Markdown with the page's located words."""
    tokens, starts = markdown_tokens(markdown)
    layer = located_tokens(words, set(tokens))
    matched: list[tuple[int, ...] | None] = [None] * len(tokens)
    strong = [False] * len(tokens)
    located = layer.tokens
    taken = [False] * len(located)
    partner: list[int | None] = [None] * len(tokens)  # the layer token each Markdown token matched

    def take(i: int, j: int, is_strong: bool) -> None:
        matched[i], strong[i], taken[j], partner[i] = layer.words[j], is_strong, True, j

    grams = list(zip(*(tokens[k:] for k in range(ANCHOR))))  # ANCHOR tokens from each position
    once_in_markdown = Counter(grams)
    place: dict[tuple[str, ...], int] = {}  # gram -> its one position among the located tokens, or -1
    for j, gram in enumerate(zip(*(located[k:] for k in range(ANCHOR)))):
        place[gram] = -1 if gram in place else j
    for i, gram in enumerate(grams):
        if matched[i] is not None:
            continue
        j = place.get(gram, -1)
        if j < 0 or once_in_markdown[gram] != 1 or taken[j]:
            continue
        # Grow the match both ways while the tokens agree and neither side is taken.
        left = 0
        while i - left - 1 >= 0 and j - left - 1 >= 0 and matched[i - left - 1] is None \
                and not taken[j - left - 1] and tokens[i - left - 1] == located[j - left - 1]:
            left += 1
        right = 0
        while i + right < len(tokens) and j + right < len(located) and matched[i + right] is None \
                and not taken[j + right] and tokens[i + right] == located[j + right]:
            right += 1
        for k in range(-left, right):
            take(i + k, j + k, True)
    # Weak matches: a token between matched neighbours whose partner sits between theirs,
    # then tokens found exactly once on each side among what is left.
    for order, step in ((range(len(tokens)), 1), (range(len(tokens) - 1, -1, -1), -1)):
        for i in order:
            before = i - step
            if matched[i] is not None or not 0 <= before < len(tokens) or partner[before] is None:
                continue
            j = partner[before] + step
            if 0 <= j < len(layer.tokens) and not taken[j] and layer.tokens[j] == tokens[i]:
                take(i, j, False)
    free_md = Counter(t for t, m in zip(tokens, matched) if m is None)
    free_layer: dict[str, list[int]] = defaultdict(list)
    for j, token in enumerate(layer.tokens):
        if not taken[j]:
            free_layer[token].append(j)
    for i, token in enumerate(tokens):
        if matched[i] is None and free_md[token] == 1 and len(free_layer.get(token, ())) == 1 and len(token) > 2:
            take(i, free_layer[token][0], False)
    share = sum(m is not None for m in matched) / len(tokens) if tokens else 0.0
    trusted = bool(tokens) and (share >= MIN_MATCHED_SHARE or (len(tokens) < MIN_TOKENS_TO_JUDGE and share > 0))
    return PageAlignment(words.source, starts, matched, strong, share, trusted, words, _line_numbers(words))


def _rectangles(words: PageWords, line_of: np.ndarray, strong: list[int], weak: list[int]) -> list[Box]:
    """Boxes around the given words: line by line, joined while lines follow down a column."""
    if not strong and not weak:
        return []
    boxes = words.boxes
    chosen = np.unique(np.asarray(strong or weak, dtype=np.int64))
    rects = _join_lines(boxes, line_of, chosen)
    if strong and weak:
        height = float(np.median(boxes[chosen, 3] - boxes[chosen, 1])) or 1.0
        candidates = np.setdiff1d(np.asarray(weak, dtype=np.int64), chosen)
        near = [w for w in candidates.tolist() if any(inside(boxes[w], r, height) for r in rects)]
        if near:
            rects = _join_lines(boxes, line_of, np.union1d(chosen, near))
    return [tuple(round(v, 1) for v in rect) for rect in rects]


def _line_numbers(words: PageWords) -> np.ndarray:
    """The visual line of each word: a new line where the source starts one, and also where the
    next word does not sit beside the last (PDFium can give a whole rotated table as one line)."""
    counts = [len(line.split()) for line in words.text.split("\n")]
    starts = np.zeros(len(words.boxes), dtype=bool)
    starts[np.cumsum([0] + counts[:-1])[[c > 0 for c in counts]]] = True
    if len(words.boxes) > 1:
        before, after = words.boxes[:-1], words.boxes[1:]
        height = np.minimum(before[:, 3] - before[:, 1], after[:, 3] - after[:, 1])
        overlap = np.minimum(before[:, 3], after[:, 3]) - np.maximum(before[:, 1], after[:, 1])
        went_back = after[:, 0] < before[:, 2] - height
        starts[1:] |= (overlap < 0.5 * height) | went_back
    return np.cumsum(starts) - 1


def inside(box, rect, margin: float = 0.0) -> bool:
    """Whether the centre of ``box`` lies in ``rect`` grown by ``margin`` on every side."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return rect[0] - margin <= cx <= rect[2] + margin and rect[1] - margin <= cy <= rect[3] + margin


def _join_lines(boxes: np.ndarray, line_of: np.ndarray, chosen: np.ndarray) -> list[list[float]]:
    # Words come in order and lines are numbered in that order, so each line is one run.
    lines_of_chosen = line_of[chosen]
    starts = np.flatnonzero(np.r_[True, lines_of_chosen[1:] != lines_of_chosen[:-1]])
    picked = boxes[chosen].astype(np.float64)
    line_boxes = np.column_stack([np.minimum.reduceat(picked[:, 0], starts), np.minimum.reduceat(picked[:, 1], starts),
                                  np.maximum.reduceat(picked[:, 2], starts), np.maximum.reduceat(picked[:, 3], starts)])
    height = float(np.median(line_boxes[:, 3] - line_boxes[:, 1])) or 1.0
    rects: list[list[float]] = []
    for box in line_boxes.tolist():  # in the words' own order: down a column, then the next
        for rect in reversed(rects):
            overlaps_x = min(rect[2], box[2]) > max(rect[0], box[0])
            close_y = box[1] <= rect[3] + LINE_GAP * height and box[3] >= rect[1] - LINE_GAP * height
            if overlaps_x and close_y:
                rect[:] = [min(rect[0], box[0]), min(rect[1], box[1]), max(rect[2], box[2]), max(rect[3], box[3])]
                break
        else:
            rects.append(box)
    # Rectangles that came to overlap (a line joined to both) become one.
    merged = True
    while merged and len(rects) > 1:
        merged = False
        for a in range(len(rects)):
            for b in range(a + 1, len(rects)):
                ra, rb = rects[a], rects[b]
                if min(ra[2], rb[2]) > max(ra[0], rb[0]) and min(ra[3], rb[3]) > max(ra[1], rb[1]):
                    rects[a] = [min(ra[0], rb[0]), min(ra[1], rb[1]), max(ra[2], rb[2]), max(ra[3], rb[3])]
                    del rects[b]
                    merged = True
                    break
            if merged:
                break
    return rects


def union(boxes: list[Box]) -> Box | None:
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
