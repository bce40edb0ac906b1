"""One file's pages of Markdown -> chunks (pure: no LlamaIndex, no I/O).

Rules, in order of precedence:
1. Every heading starts a new chunk, and the headings above a chunk form its header path.
   The path carries across pages: a section that starts on page 3 keeps its path on page 4.
2. Blocks under one heading are packed into chunks up to ``max_tokens``; a chunk may run
   from one page onto the next, and then lists both pages.
3. A block over the budget is cut by ``split.split_block`` (tables between rows with their
   header repeated, prose at sentence ends); a table or formula is never cut mid-way.
4. Page furniture (running headers, footers, page numbers) is left out when asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .blocks import Block, parse_blocks
from .furniture import find_furniture
from .split import Piece, split_block
from .tokens import TokenCounter, estimate_tokens, is_additive

BLOCK_SEPARATOR = "\n\n"
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class PageText:
    """One page's Markdown and what the OCR engine located on it (boxes in page points)."""

    page: int
    markdown: str
    figures: tuple[dict, ...] = ()  # {"ref": "image_1.png", "bbox": [x0, y0, x1, y1] | None}
    text_boxes: tuple[dict, ...] = ()  # {"text": "...", "bbox": [...]}, CPU engine only


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    pages: tuple[int, ...]
    header_path: tuple[str, ...]
    block_types: tuple[str, ...]
    figures: tuple[dict, ...] = ()  # {"ref", "page", "bbox"}
    text_boxes: tuple[dict, ...] = ()  # {"page", "bbox"} of the text lines it holds
    oversize: bool = False  # holds one formula or table row longer than the budget by itself
    carried: tuple[str, ...] = ()  # table header text repeated from an earlier chunk

    @property
    def page(self) -> int:
        return self.pages[0]


@dataclass
class _Open:
    parts: list[str]
    pages: list[int]
    kinds: list[str]
    refs: list[tuple[int, str]]
    oversize: bool = False
    carried: tuple[str, ...] = ()
    tokens: int = 0  # of its parts joined, kept when the counter is additive


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[#*_`>|]", " ", text)).strip().lower()


def chunk_pages(pages: list[PageText], max_tokens: int = DEFAULT_MAX_TOKENS,
                drop_page_furniture: bool = True, count: TokenCounter = estimate_tokens,
                heading_path: list[tuple[int, str]] | None = None) -> list[Chunk]:
    """Chunk the pages of one file, given in page order.

    ``heading_path`` carries the open headings from an earlier batch of the same file's pages
    (streaming ingestion of long PDFs); it is updated in place.
    """
    if max_tokens < 16:
        raise ValueError(f"max_tokens must be at least 16, got {max_tokens}")
    page_blocks = [parse_blocks(page.markdown) for page in pages]
    furniture = find_furniture(page_blocks) if drop_page_furniture else set()
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = [] if heading_path is None else heading_path  # (level, title) above
    current: _Open | None = None
    current_path: tuple[str, ...] = tuple(title for _, title in path)

    additive = is_additive(count)

    def fits(chunk: _Open, piece: Piece, piece_tokens: int) -> bool:
        """Whether ``piece`` can join ``chunk`` under the budget (the sum of counted parts when
        counts add up, else the joined text counted whole)."""
        if additive:
            return chunk.tokens + piece_tokens <= max_tokens
        return count(BLOCK_SEPARATOR.join(chunk.parts + [piece.text])) <= max_tokens

    def flush() -> None:
        nonlocal current
        if current and current.parts:
            chunks.append(_close(len(chunks), current, current_path, pages))
        current = None

    for page_index, (page, blocks) in enumerate(zip(pages, page_blocks)):
        for block_index, block in enumerate(blocks):
            if (page_index, block_index) in furniture:
                continue
            if block.kind == "heading":
                flush()
                while path and path[-1][0] >= block.level:
                    path.pop()
                path.append((block.level, block.title or block.text.lstrip("#").strip()))
            for piece in split_block(block.kind, block.text, max_tokens, count):
                piece_tokens = count(piece.text) if additive else 0
                if current is not None and not piece.oversize and fits(current, piece, piece_tokens):
                    _add(current, piece, page.page, block, piece_tokens)
                    continue
                flush()
                current = _Open([], [], [], [])
                current_path = tuple(title for _, title in path)
                _add(current, piece, page.page, block, piece_tokens)
    flush()
    return chunks


def _add(chunk: _Open, piece: Piece, page: int, block: Block, tokens: int) -> None:
    chunk.parts.append(piece.text)
    chunk.tokens += tokens
    chunk.pages.append(page)
    chunk.kinds.append(block.kind)
    chunk.refs.extend((page, ref) for ref in block.figure_refs if ref in piece.text)
    chunk.oversize = chunk.oversize or piece.oversize
    chunk.carried = chunk.carried + piece.carried


def _close(index: int, chunk: _Open, header_path: tuple[str, ...], pages: list[PageText]) -> Chunk:
    text = BLOCK_SEPARATOR.join(chunk.parts)
    by_page = {page.page: page for page in pages}
    figures = []
    for page, ref in chunk.refs:
        for figure in by_page[page].figures:
            if figure.get("ref") == ref:
                figures.append({"ref": ref, "page": page, "bbox": figure.get("bbox")})
                break
    normalised = _normalise(text)
    text_boxes = [{"page": page, "bbox": box["bbox"]}
                  for page in dict.fromkeys(chunk.pages) for box in by_page[page].text_boxes
                  if _normalise(box.get("text", "")) and _normalise(box["text"]) in normalised]
    return Chunk(
        index=index,
        text=text,
        pages=tuple(dict.fromkeys(chunk.pages)),
        header_path=header_path,
        block_types=tuple(dict.fromkeys(chunk.kinds)),
        figures=tuple(figures),
        text_boxes=tuple(text_boxes),
        oversize=chunk.oversize,
        carried=chunk.carried,
    )
