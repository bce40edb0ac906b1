"""Stage 4 - chunking: page Markdown in, chunks cut along headings, tables and formulas out."""

from .blocks import Block, parse_blocks
from .chunker import DEFAULT_MAX_TOKENS, Chunk, ChunkFigure, PageText, chunk_pages
from .furniture import find_furniture
from .node_parser import MarkdownBlockNodeParser, chunk_node_id
from .quality import RegionQuality, region_quality
from ..pages.alignment import PageAlignment, align
from .split import Piece, split_block
from .tokens import estimate_tokens, tokenizer_counter

__all__ = [
    "Block",
    "Chunk",
    "ChunkFigure",
    "PageAlignment",
    "RegionQuality",
    "align",
    "region_quality",
    "DEFAULT_MAX_TOKENS",
    "MarkdownBlockNodeParser",
    "PageText",
    "Piece",
    "chunk_node_id",
    "chunk_pages",
    "estimate_tokens",
    "find_furniture",
    "parse_blocks",
    "split_block",
    "tokenizer_counter",
]
