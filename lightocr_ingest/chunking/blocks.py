"""Markdown -> blocks, on markdown-it-py's token stream (pure, no I/O).

A block is one top-level Markdown element with its exact source text, so that chunks can be
rebuilt from source lines and no character is lost or rewritten. Kinds:

heading, paragraph, list, table (pipe), html_table, math (``$$..$$`` and ``\\[..\\]``),
code, blockquote, figure (a paragraph that is only image references), html, rule.

LightOnOCR writes HTML tables, and a blank line inside one ends a CommonMark HTML block; the
pieces are joined back here until the ``</table>`` that closes the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from mdit_py_plugins.dollarmath import dollarmath_plugin

IMAGE_REF = re.compile(r"!\[[^\]\n]*\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    kind: str
    text: str  # exact source lines of the block, without trailing blank lines
    level: int = 0  # heading level (1-6); 0 for other blocks
    title: str = ""  # heading text without markers, for header paths
    start: int = 0  # character offset of ``text`` in the page's Markdown

    @property
    def figure_refs(self) -> list[str]:
        return IMAGE_REF.findall(self.text)


def _bracket_math(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """Block rule for display math written as ``\\[ ... \\]`` (LaTeX style)."""
    first = state.src[state.bMarks[start] + state.tShift[start]:state.eMarks[start]]
    if state.sCount[start] - state.blkIndent >= 4 or not first.startswith("\\["):
        return False
    line = start
    while line < end:
        text = state.src[state.bMarks[line] + state.tShift[line]:state.eMarks[line]].rstrip()
        if text.endswith("\\]") and (line > start or len(text) > 2):
            break
        if line > start and not text:
            return False  # a blank line before the closing bracket: not a formula block
        line += 1
    else:
        return False
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.map = [start, line + 1]
    state.line = line + 1
    return True


def _new_parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": True}).enable("table")
    parser.use(dollarmath_plugin, allow_space=True, allow_digits=True, double_inline=True)
    parser.block.ruler.before("paragraph", "bracket_math", _bracket_math,
                              {"alt": ["paragraph", "reference", "blockquote", "list"]})
    return parser


@lru_cache(maxsize=1)
def markdown_parser() -> MarkdownIt:
    return _new_parser()


@lru_cache(maxsize=1)
def _block_parser() -> MarkdownIt:
    """``markdown_parser`` without its inline pass: blocks need only their lines, and parsing
    every paragraph's inline content was a third of the parse. The one question that needs it
    (is a paragraph only images?) is asked of ``markdown_parser`` for that paragraph alone."""
    return _new_parser().disable("inline")


_KIND = {
    "heading_open": "heading",
    "paragraph_open": "paragraph",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "table_open": "table",
    "math_block": "math",
    "math_block_label": "math",
    "fence": "code",
    "code_block": "code",
    "blockquote_open": "blockquote",
    "hr": "rule",
    "html_block": "html",
}


def _source(lines: list[str], start: int, stop: int) -> str:
    return "\n".join(lines[start:stop]).strip("\n")


def _offset(lines: list[str], line_starts: list[int], start: int, stop: int) -> int:
    """Character offset in the page of ``_source(lines, start, stop)``."""
    joined = "\n".join(lines[start:stop])
    return line_starts[start] + len(joined) - len(joined.lstrip("\n")) if start < len(lines) else 0


def parse_blocks(markdown: str, apart: Callable[[int], bool] | None = None) -> list[Block]:
    """Split one page of Markdown into top-level blocks, in order."""
    lines = markdown.split("\n")
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)
    env: dict = {}  # link reference definitions, for a paragraph parsed inline on its own
    tokens = _block_parser().parse(markdown, env)
    spans: list[tuple[int, int, str, int, str]] = []  # start, stop, kind, level, title
    for index, token in enumerate(tokens):
        if token.level != 0 or token.nesting < 0 or token.map is None or token.type not in _KIND:
            continue
        kind = _KIND[token.type]
        start, stop = token.map
        level, title = 0, ""
        if kind == "heading":
            level = int(token.tag[1])
            title = tokens[index + 1].content.strip()
        elif kind == "paragraph":
            content = tokens[index + 1].content
            # Only a paragraph that holds an image's "![" can be images only (an entity such as
            # &nbsp; may come first).
            children = (markdown_parser().parseInline(content, env)[0].children or []) if "![" in content else []
            meaningful = [c for c in children if c.type not in ("softbreak", "hardbreak")
                          and not (c.type == "text" and not c.content.strip())]
            if meaningful and all(c.type == "image" for c in meaningful):
                kind = "figure"
        elif kind == "html" and re.match(r"\s*<table\b", token.content, re.I):
            kind = "html_table"
        spans.append((start, stop, kind, level, title))
    spans = _join_split_html_tables(spans, lines, line_starts, apart)
    blocks: list[Block] = []
    covered = 0
    for start, stop, kind, level, title in spans:
        blocks.extend(_stray_lines(lines, line_starts, covered, start))
        text = _source(lines, start, stop)
        if text.strip():
            blocks.append(Block(kind, text, level, title, _offset(lines, line_starts, start, stop)))
        covered = max(covered, stop)
    blocks.extend(_stray_lines(lines, line_starts, covered, len(lines)))
    return blocks


def _join_split_html_tables(spans: list, lines: list[str], line_starts: list[int],
                            apart: Callable[[int], bool] | None) -> list:
    """Merge the HTML blocks of one table that blank lines split apart; never a block that
    ``apart`` says stands on its own (a running header the model labelled, between two pieces:
    joined, it could not be left out as furniture)."""
    joined: list = []
    open_table = False
    for span in spans:
        start, stop, kind, level, title = span
        alone = apart is not None and apart(_offset(lines, line_starts, start, stop))
        if open_table and kind in ("html", "html_table", "paragraph") and not alone:
            joined[-1] = (joined[-1][0], stop, "html_table", 0, "")
        else:
            joined.append(span)
        text = _source(lines, joined[-1][0], joined[-1][1]).lower()
        open_table = not alone and joined[-1][2] == "html_table" and text.count("<table") > text.count("</table")
    return joined


def _stray_lines(lines: list[str], line_starts: list[int], start: int, stop: int) -> list[Block]:
    """Source lines no token claimed (should not happen): kept as a paragraph, never dropped."""
    text = _source(lines, start, stop)
    return [Block("paragraph", text, start=_offset(lines, line_starts, start, stop))] if text.strip() else []
