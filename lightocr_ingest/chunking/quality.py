"""How well regions cover their chunk and nothing else: the measure of ``benchmarks/regions.py``.

Judged by word boxes taken as the truth (a PDF's text layer): coverage is the share of a
chunk's words whose box centre lies inside one of its regions; leakage is other chunks'
words inside its regions, per own word. Only words that occur once on the page, and in one
chunk's text, are counted, so that each can be told apart; these are also the words the
alignment anchors on, so the measure says where the text is placed, not whether rare and
common words were both found.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from ..records import PageWords, Region
from ..pages.alignment import inside, located_tokens, markdown_tokens


@dataclass(frozen=True)
class RegionQuality:
    page: int
    chunk: int
    words: int  # the chunk's words that occur once on the page (what is measured)
    coverage: float  # share of them whose box centre is inside one of the chunk's regions
    leakage: float  # other chunks' such words inside its regions, per own word


def region_quality(page: int, chunks: list[tuple[int, str, list[Region]]], truth: PageWords) -> list[RegionQuality]:
    """Coverage and leakage of each chunk's regions on ``page``, judged by ``truth`` word boxes.

    ``chunks`` holds (chunk index, chunk text, its regions) for every chunk with text on the
    page. A word counts when it occurs once among the page's words and in one chunk's text.
    """
    layer = located_tokens(truth, set())
    counts = Counter(layer.tokens)
    once = {token: layer.words[j][0] for j, token in enumerate(layer.tokens) if counts[token] == 1 and len(token) > 2}
    owners: dict[str, list[int]] = defaultdict(list)
    for position, (_, text, _) in enumerate(chunks):
        for token in set(markdown_tokens(text)[0]):
            if token in once:
                owners[token].append(position)
    own: dict[int, list[int]] = defaultdict(list)  # chunk position -> its words (indices into truth)
    for token, holders in owners.items():
        if len(holders) == 1:
            own[holders[0]].append(once[token])
    out = []
    for position, (index, _, regions) in enumerate(chunks):
        mine = own.get(position, [])
        if not mine:
            continue
        rects = [r.bbox for r in regions if r.page == page]

        def placed(word: int) -> bool:
            return any(inside(truth.boxes[word], rect) for rect in rects)

        others = [w for other, words in own.items() if other != position for w in words]
        out.append(RegionQuality(page, index, len(mine), sum(map(placed, mine)) / len(mine),
                                 sum(map(placed, others)) / len(mine)))
    return out
