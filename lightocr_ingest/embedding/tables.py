"""What an HTML table in a chunk gives the embedding model and BM25: its cells' text.

LightOnOCR, and the text layer after it, write tables as HTML, and a chunk keeps them so (an
LLM reads HTML tables well). An embedding model reads the tags as words: a table of ten columns
spends most of all-MiniLM-L6-v2's 256 word pieces on ``<td>`` and ``</td>``, and its vector
says little about what the cells hold. So the text a chunk is embedded from (dense and BM25)
has each table as its rows, one a line, cells apart by a space, entities decoded. On the real
documents and the Yosys manual this raised MRR in both modes (benchmarks/README.md, "What the
heading path in the embedding does"). Queries have no tables: they pass unchanged. Pure.
"""

from __future__ import annotations

import html
import re

# To its end, or to the chunk's end: a long table cut to fit a chunk may arrive unclosed.
_TABLE = re.compile(r"<table\b[^>]*>.*?(?:</table\s*>|\Z)", re.S | re.I)
_CELL_END = re.compile(r"</t[dh]\s*>\s*", re.I)
_ROW = re.compile(r"<tr\b[^>]*>", re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # tag-shaped only: a cell's "p<0.05" is text
_SPACES = re.compile(r"[ \t]+")


def tables_as_text(text: str) -> str:
    """``text`` with each HTML table as its cells' text: rows on lines, cells apart by a space."""
    if "<table" not in text.lower():  # most chunks: nothing to do
        return text
    return _TABLE.sub(_table_text, text)


def _table_text(match: re.Match) -> str:
    rows = _ROW.split(_CELL_END.sub(" ", match.group(0)))
    lines = (_SPACES.sub(" ", html.unescape(_TAG.sub(" ", row))).strip() for row in rows)
    return "\n".join(line for line in lines if line)


__all__ = ["tables_as_text"]
