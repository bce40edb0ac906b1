"""One file's pages of Markdown -> chunks (pure: no LlamaIndex, no I/O).

Rules, in order of precedence:
1. Every heading starts a new chunk, and the headings above a chunk form its header path.
   The path carries across pages: a section that starts on page 3 keeps its path on page 4.
2. Blocks under one heading are packed into chunks up to ``max_tokens``; a chunk may run
   from one page onto the next, and then lists both pages.
3. A block over the budget is cut by ``split.split_block`` (tables between rows with their
   header repeated, prose at sentence ends); a table or formula is never cut mid-way.
4. Page furniture (running headers, footers, page numbers) is left out when asked; what is
   furniture is decided over the whole file (``furniture``), so a file is chunked whole and
   gives the same chunks however its pages arrived.
5. Each chunk keeps the character spans of its text in each page's Markdown, and from them
   its ``regions``: where that text lies on the page (``pages.alignment.align``).
6. On a page the model grounded (LightOnOCR-3), its labels decide instead (``grounded``):
   header, footer and page-number blocks are furniture without the repetition rule; a
   ``text+`` block joins the paragraph it continues (next column, next page); a caption stays
   with its table, chart or image; formula and code blocks are never cut; regions are the
   model's boxes; ``block_types`` are the model's labels.
7. Elsewhere a paragraph that opens like a table's caption ("Table 2.1:") stays with the table
   it precedes when both fit the budget: the text-layer engine and LightOnOCR-2 write captions
   as paragraphs, and a table's rows say little without the caption that names them. A caption
   that follows a table is that table's, and is never moved to the next one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..metadata import BboxSource
from ..records import PageLayout, Region
from .blocks import Block, parse_blocks
from .furniture import find_furniture
from .grounded import (FIGURE_LABELS, KEEP_WHOLE_LABELS, GroundedPage, PlacedPart, furniture_blocks,
                      is_furniture_at)
from ..pages.alignment import PageAlignment, align, union
from .split import Piece, split_block
from .tokens import TokenCounter, estimate_tokens, is_additive

BLOCK_SEPARATOR = "\n\n"
DEFAULT_MAX_TOKENS = 512
# A table caption's opening: its word and number, then punctuation and a space ("Table 4. ",
# "Table A1. ", "TABLE IV: ", "Table 2.1: ", "Table 3.** "). "Table 3 shows" and "Table 2.1 shows"
# have no punctuation after the number: sentences, not captions.
_TABLE_CAPTION = re.compile(r"(Table|TABLE|Tab\.)\s*[A-Z]?[\dIVXLC]+([.\-–]\d+)*\s*[.:|][*_]*(\s|$)")
_CAPTION_TYPE = {"table_caption": "caption"}  # in ``block_types``, as the model's label
_CAPTIONED = {"table_caption": frozenset({"table", "html_table"})}  # Markdown kinds such a caption goes with


@dataclass(frozen=True)
class PageText:
    """One page's Markdown and what is known of where things are on it."""

    page: int
    markdown: str
    layout: PageLayout | None = None


@dataclass(frozen=True)
class ChunkFigure:
    ref: str  # the file name in the Markdown reference, e.g. "image_1.png"
    page: int
    bbox: tuple[float, float, float, float] | None  # page points, when the model gave a box


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    pages: tuple[int, ...]
    header_path: tuple[str, ...]
    block_types: tuple[str, ...]
    figures: tuple[ChunkFigure, ...] = ()
    regions: tuple[Region, ...] = ()  # where its text lies, one or more boxes per page
    bbox_source: BboxSource = "none"
    oversize: bool = False  # holds one formula or table row longer than the budget by itself
    carried: tuple[str, ...] = ()  # table header text repeated from an earlier chunk
    spans: tuple[tuple[int, int, int], ...] = ()  # (page, start, end) of its text in the pages' Markdown
    blocks: tuple[PlacedPart, ...] = ()  # grounded pages: the model's blocks it holds (label, box)

    @property
    def page(self) -> int:
        return self.pages[0]

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        """The union of its regions on its first page."""
        return union([r.bbox for r in self.regions if r.page == self.page])


@dataclass
class _Open:
    parts: list[str]
    pages: list[int]
    kinds: list[str]
    refs: list[tuple[int, str]]
    spans: list[tuple[int, int, int]]
    oversize: bool = False
    carried: tuple[str, ...] = ()
    tokens: int = 0  # of its parts joined, kept when the counter is additive
    added: list[tuple[int, int, int]] = field(default_factory=list)  # per part: spans, refs, tokens it brought

    def ends_with_caption_of(self, captioned: str) -> bool:
        """Its last part is a caption for a part of kind ``captioned``, and not the caption of a
        table set above it (a caption below its table is that table's)."""
        return bool(self.kinds) and _captions(self.kinds[-1], captioned) and \
            not (len(self.kinds) > 1 and _captions(self.kinds[-1], self.kinds[-2]))

    def pop_caption(self, captioned: str) -> tuple | None:
        """Its last part when that is a caption of ``captioned`` (the kind of the table, chart or
        image that starts the next chunk) and not all it holds, taken out (to go with it)."""
        if len(self.parts) < 2 or not self.ends_with_caption_of(captioned) or len(self.added) != len(self.parts):
            return None
        spans, refs, tokens = self.added.pop()
        taken = (self.parts.pop(), self.pages.pop(), self.kinds.pop(), self.refs[len(self.refs) - refs:],
                 self.spans[len(self.spans) - spans:], tokens)
        del self.refs[len(self.refs) - refs:], self.spans[len(self.spans) - spans:]
        self.tokens -= tokens
        return taken

    def take(self, taken: tuple) -> None:
        part, page, kind, refs, spans, tokens = taken
        self.parts.append(part)
        self.pages.append(page)
        self.kinds.append(kind)
        self.refs.extend(refs)
        self.spans.extend(spans)
        self.tokens += tokens
        self.added.append((len(spans), len(refs), tokens))


def chunk_pages(pages: list[PageText], max_tokens: int = DEFAULT_MAX_TOKENS,
                drop_page_furniture: bool = True, count: TokenCounter = estimate_tokens,
                regions: bool = True) -> list[Chunk]:
    """Chunk all the pages of one file, given in page order (furniture is judged over them all)."""
    if max_tokens < 16:
        raise ValueError(f"max_tokens must be at least 16, got {max_tokens}")
    grounded = {page.page: GroundedPage(page.page, page.layout.blocks) for page in pages
                if page.layout is not None and page.layout.blocks}
    # A block the model labelled furniture is never joined into a table split around it.
    page_blocks = [parse_blocks(page.markdown, is_furniture_at(grounded[page.page])
                                if drop_page_furniture and page.page in grounded else None) for page in pages]
    furniture = find_furniture(page_blocks, [page.page for page in pages]) if drop_page_furniture else set()
    if drop_page_furniture and grounded:  # the model's labels, not repetition, on the pages it grounded
        furniture = {(p, b) for p, b in furniture if pages[p].page not in grounded}
        for p, (page, blocks) in enumerate(zip(pages, page_blocks)):
            if page.page in grounded:
                furniture |= {(p, b) for b in furniture_blocks(grounded[page.page], [bl.start for bl in blocks])}
    by_page = {page.page: page for page in pages}
    alignments = _Alignments(by_page, grounded) if regions else None
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []  # (level, title) of the headings above
    current: _Open | None = None
    current_path: tuple[str, ...] = tuple(title for _, title in path)

    additive = is_additive(count)

    def fits(chunk: _Open, piece: Piece, piece_tokens: int) -> bool:
        """Whether ``piece`` can join ``chunk`` under the budget (the sum of counted parts when
        counts add up, else the joined text counted whole)."""
        if additive:
            return chunk.tokens + piece_tokens <= max_tokens
        return count(BLOCK_SEPARATOR.join(chunk.parts + [piece.text])) <= max_tokens

    def flush(next_page: int | None = None) -> None:
        nonlocal current
        if current and current.parts:
            chunks.append(_close(len(chunks), current, current_path, by_page, alignments))
        current = None
        if alignments is not None and next_page is not None:
            alignments.forget_before(next_page)  # no later chunk starts before the page being read

    for page_index, (page, blocks) in enumerate(zip(pages, page_blocks)):
        for block_index, block in enumerate(blocks):
            cursor = 0  # where the next piece of this block is looked for
            if (page_index, block_index) in furniture:
                continue
            if block.kind == "heading":
                flush(page.page)
                while path and path[-1][0] >= block.level:
                    path.pop()
                path.append((block.level, block.title or block.text.lstrip("#").strip()))
            layout = grounded.get(page.page)
            model_block = layout.block_at(block.start) if layout else None
            label = model_block.label if model_block else None
            kind = label or _caption_kind(block) or block.kind
            split_kind = "math" if label in KEEP_WHOLE_LABELS else block.kind  # "math": never cut
            # "text+": the first Markdown block of a block that goes on from the last one
            continues = bool(model_block and model_block.continues and model_block.start == block.start)
            for number, piece in enumerate(_pieces(split_kind, block.text, max_tokens, count,
                                                   _caption_room(current, kind, count, max_tokens))):
                piece_tokens = count(piece.text) if additive else 0
                spans, cursor = _piece_spans(page.page, block, piece, cursor)
                figure = layout.image_ref_at(block.start) if label == "image" and number == 0 else None
                if current is not None and (
                        (not piece.oversize and fits(current, piece, piece_tokens))
                        or (label == "caption" and current.kinds[-1] in FIGURE_LABELS)):  # with what it captions
                    _add(current, piece, page.page, kind, block, piece_tokens, spans, figure,
                         join=continues and number == 0 and current.kinds[-1] in ("text", "paragraph"))
                    continue
                # a caption just before a table, chart or image that starts a new chunk goes with
                # it (a caption the model did not label: when both fit the budget)
                caption = current.pop_caption(kind) if current is not None else None
                if caption is not None and caption[2] != "caption" and not fits(
                        _Open([caption[0]], [], [], [], [], tokens=caption[5]), piece, piece_tokens):
                    current.take(caption)
                    caption = None
                flush(page.page)
                current = _Open([], [], [], [], [])
                current_path = tuple(title for _, title in path)
                if caption is not None:
                    current.take(caption)
                _add(current, piece, page.page, kind, block, piece_tokens, spans, figure)
    flush()
    return chunks


def _piece_spans(page: int, block: Block, piece: Piece, cursor: int) -> tuple[list[tuple[int, int, int]], int]:
    """Where a piece's text sits in its page's Markdown: its own text, and a table header it
    repeats (which lies at the block's start). Returns the spans and the block cursor after it."""
    own = piece.text
    spans = []
    for carried in piece.carried:
        if own.startswith(carried):
            own = own[len(carried):]
            head = carried.strip()
            at = block.text.find(head)
            if head and at >= 0:
                spans.append((page, block.start + at, block.start + at + len(head)))
        elif own.endswith(carried):
            own = own[:len(own) - len(carried)]
    own = own.strip()
    at = block.text.find(own, cursor) if own else -1
    if at < 0:  # not found as it is (should not happen): the whole block, so no text goes unplaced
        return spans + [(page, block.start, block.start + len(block.text))], cursor
    spans.append((page, block.start + at, block.start + at + len(own)))
    return spans, at + len(own)


class _Alignments:
    """Each page's Markdown aligned with its located words, computed once, on first use.

    The text layer is preferred (exact boxes) when it matches the Markdown; otherwise the
    lines the CPU engine read or the embedded detector located; otherwise none.
    """

    def __init__(self, pages: dict[int, PageText], grounded: dict[int, GroundedPage]):
        self._pages = pages
        self.grounded = grounded  # pages the model placed itself: no alignment needed
        self._done: dict[int, PageAlignment | None] = {}

    def of(self, page_number: int) -> PageAlignment | None:
        if page_number not in self._done:
            page = self._pages[page_number]
            found = None
            if page.layout is not None:
                for words in (page.layout.text_layer, page.layout.ocr_lines):
                    if words is not None and len(words):
                        alignment = align(page.markdown, words)
                        if alignment.trusted:
                            found = alignment
                            break
            self._done[page_number] = found
        return self._done[page_number]

    def forget_before(self, page_number: int) -> None:
        """Let go of pages no chunk will need again (a long file's alignments are not all held)."""
        for number in [n for n in self._done if n < page_number]:
            del self._done[number]


def _add(chunk: _Open, piece: Piece, page: int, kind: str, block: Block, tokens: int, spans: list,
         figure: str | None = None, join: bool = False) -> None:
    """``piece`` into ``chunk``: as a part of its own, or (``join``) as the rest of the last
    part's paragraph (a ``text+`` block, across a column or a page), after a space."""
    chunk.spans.extend(spans)
    refs = [(page, ref) for ref in block.figure_refs if ref in piece.text] + ([(page, figure)] if figure else [])
    if join:
        chunk.parts[-1] = f"{chunk.parts[-1]} {piece.text}"
        chunk.added.clear()  # parts and what each brought no longer match one to one: no caption is moved
    else:
        chunk.parts.append(piece.text)
        chunk.added.append((len(spans), len(refs), tokens))
    chunk.tokens += tokens
    chunk.pages.append(page)
    chunk.kinds.append(kind)
    chunk.refs.extend(refs)
    chunk.oversize = chunk.oversize or piece.oversize
    chunk.carried = chunk.carried + piece.carried


def _close(index: int, chunk: _Open, header_path: tuple[str, ...], by_page: dict[int, PageText],
           alignments: _Alignments | None) -> Chunk:
    text = BLOCK_SEPARATOR.join(chunk.parts)
    figures = []
    for page, ref in chunk.refs:
        layout = by_page[page].layout
        placed = next((f for f in (layout.figures if layout else ()) if f.ref == ref), None)
        figures.append(ChunkFigure(ref, page, placed.box if placed else None))
    regions: list[Region] = []
    sources: list[str] = []
    blocks: list[PlacedPart] = []
    for page in dict.fromkeys(chunk.pages):
        spans = [(start, end) for p, start, end in chunk.spans if p == page]
        grounded = alignments.grounded.get(page) if alignments is not None else None
        if grounded is not None:  # the model's own boxes
            parts = grounded.parts(spans)
            blocks.extend(parts)
            regions.extend(Region(part.page, part.bbox) for part in parts)
            sources.append("model")
            continue
        alignment = alignments.of(page) if alignments is not None else None
        if alignment is None:
            continue
        found = alignment.regions(page, spans)
        if found:
            regions.extend(found)
            sources.append(alignment.source)
    return Chunk(
        index=index,
        text=text,
        pages=tuple(dict.fromkeys(chunk.pages)),
        header_path=header_path,
        block_types=tuple(dict.fromkeys(_CAPTION_TYPE.get(kind, kind) for kind in chunk.kinds)),
        figures=tuple(figures),
        regions=tuple(regions),
        bbox_source=sources[0] if sources else "none",
        oversize=chunk.oversize,
        carried=chunk.carried,
        spans=tuple(chunk.spans),
        blocks=tuple(blocks),
    )


def _caption_kind(block: Block) -> str | None:
    """"table_caption" for a paragraph that opens like a table's caption, else None."""
    if block.kind != "paragraph":
        return None
    return "table_caption" if _TABLE_CAPTION.match(block.text.lstrip("*_ ")) else None  # "**Table 2.**"


def _captions(caption: str, captioned: str) -> bool:
    """A part of kind ``caption`` belongs with one of kind ``captioned``: the model's caption
    with its table, chart or image; a paragraph that opens like a table's caption with a
    Markdown table."""
    if caption == "caption":
        return captioned in FIGURE_LABELS
    return captioned in _CAPTIONED.get(caption, ())


def _caption_room(current: _Open | None, kind: str, count: TokenCounter, max_tokens: int) -> int:
    """Tokens to leave free in the pieces of a table too long for one chunk, for the caption
    just before it (one the model did not label), so that the caption fits with the table's
    first piece: "Table 4. An example landscape table." says what its rows are. 0 when there
    is none, or when the caption would take more than a quarter of the budget."""
    if current is None or not current.ends_with_caption_of(kind) or current.kinds[-1] == "caption":
        return 0
    room = count(current.parts[-1]) + count(BLOCK_SEPARATOR)
    return room if room <= max_tokens // 4 else 0


def _pieces(kind: str, text: str, max_tokens: int, count: TokenCounter, room: int) -> list[Piece]:
    """``split_block``'s pieces, made ``room`` tokens smaller when the block is cut anyway (a
    block that fits whole is never cut for a caption), unless that would leave a row over the
    smaller budget (a piece marked oversize that is not)."""
    pieces = split_block(kind, text, max_tokens, count)
    if room and len(pieces) > 1:
        smaller = split_block(kind, text, max_tokens - room, count)
        if not any(piece.oversize for piece in smaller):
            return smaller
    return pieces
