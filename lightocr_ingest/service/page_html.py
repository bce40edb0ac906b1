"""A page's Markdown as safe HTML for the web page: headings, paragraphs, the model's HTML
tables, and LaTeX as MathML (which browsers draw natively: no script, no build step).

The model's output is text from a document, and a document can hold anything, so only an
allow-list of tags and attributes survives; everything else is shown as text. The one URL kept is
a link's href to the web, to mail or within the page. The web page applies the same lists again
(static/app.js mirrors them; tests/test_page_allow_list.py checks that they are equal).
"""

from __future__ import annotations

import functools
import html
import re
from html.parser import HTMLParser

from ..ocr.postprocess import math_pairs, reads_as_math

ALLOWED_TAGS = {
    "a", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "em", "strong", "b", "i", "u", "sup", "sub", "span", "div", "table", "thead", "tbody", "tfoot", "tr",
    "th", "td", "caption", "colgroup", "col",
    # MathML Core, as latex2mathml writes it
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac", "msqrt",
    "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom",
    "menclose", "semantics", "annotation",
}
ALLOWED_ATTRIBUTES = {"colspan", "rowspan", "align", "display", "xmlns", "mathvariant", "stretchy", "fence",
                      "separator", "lspace", "rspace", "columnalign", "rowspacing", "columnspacing",
                      "displaystyle", "scriptlevel", "encoding", "width", "accent", "movablelimits"}
VOID_TAGS = {"br", "hr", "col", "mspace"}
# No attribute on the list carries a URL; a link's href is the one that may, and only to these.
SAFE_LINK_PREFIXES = ("http://", "https://", "mailto:", "#")


def _safe_link(value: str | None) -> str | None:
    """A link's href trimmed, when it goes to the web, to mail or within the page; else None."""
    value = (value or "").strip()
    return value if value.lower().startswith(SAFE_LINK_PREFIXES) else None


class _AllowList(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.out.append(html.escape(self.get_starttag_text() or ""))
            return
        kept = "".join(f' {name}="{html.escape(value or "", quote=True)}"' for name, value in attrs
                       if name in ALLOWED_ATTRIBUTES and not (value or "").lower().lstrip().startswith("javascript:"))
        # A browser follows the first href of a tag; the link opens with no handle on this page.
        href = _safe_link(next((value for name, value in attrs if name == "href"), None)) if tag == "a" else None
        if href is not None:
            kept += f' href="{html.escape(href, quote=True)}" rel="noopener noreferrer"'
        self.out.append(f"<{tag}{kept}>")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        self.out.append(f"</{tag}>" if tag in ALLOWED_TAGS and tag not in VOID_TAGS else
                        "" if tag in VOID_TAGS else html.escape(f"</{tag}>"))

    def handle_data(self, data):
        self.out.append(html.escape(data, quote=False))


def sanitise(markup: str) -> str:
    parser = _AllowList()
    parser.feed(markup)
    parser.close()
    return "".join(parser.out)


def _math(latex: str, options: dict) -> str:
    from latex2mathml.converter import convert

    try:
        return convert(latex, display="block" if options.get("display_mode") else "inline")
    except Exception:  # noqa: BLE001 - LaTeX it cannot read is shown as written
        return f"<code>{html.escape(latex)}</code>"


# --- reading the Markdown as the model writes it ----------------------------------------
# Inline math: a ``$`` opens math only when it pairs with another on the same line, as LightOn's
# fixer pairs them (``math_pairs``), so a shell prompt (``$ make``) or two prices on one line are
# text. A paragraph that starts at a shell prompt is a terminal session: it stays code, with its
# ``> `` continuation lines (which Markdown would read as a quotation) and its output.
_PLAIN_DOLLAR = re.compile(r"(?<![\\$])\$(?!\$)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_SHELL_PROMPT = re.compile(r"\$ [A-Za-z./~_-]")  # "$ make", not "$ 500 million" (a price, split by OCR)


def _inline_math(state, silent: bool) -> bool:
    src, start = state.src, state.pos
    if src[start] != "$" or not _PLAIN_DOLLAR.match(src, start):
        return False
    line_start = src.rfind("\n", 0, start) + 1
    line_end = src.find("\n", start)
    line = src[line_start:line_end if line_end >= 0 else len(src)]
    line = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)  # a $ in `code` pairs with nothing
    for left, right in math_pairs(line, list(_PLAIN_DOLLAR.finditer(line)), reads_as_math):
        if line_start + left.start() == start:
            if not silent:
                token = state.push("math_inline", "math", 0)
                token.content = src[start + 1:line_start + right.start()]
                token.markup = "$"
            state.pos = line_start + right.end()
            return True
    return False


def _shell_session(state, start_line: int, end_line: int, silent: bool) -> bool:
    first = state.bMarks[start_line] + state.tShift[start_line]
    if state.sCount[start_line] - state.blkIndent >= 4 or not _SHELL_PROMPT.match(state.src, first):
        return False
    if silent:
        return True
    line = start_line + 1
    while line < end_line and not state.isEmpty(line):
        line += 1
    token = state.push("code_block", "code", 0)
    token.content = state.getLines(start_line, line, state.blkIndent, True)
    token.map = [start_line, line]
    state.line = line
    return True


@functools.cache
def _renderer():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    dollarmath_plugin(md, renderer=_math, allow_digits=False)  # $$ display blocks, and the math renderers
    md.inline.ruler.at("math_inline", _inline_math)
    md.block.ruler.before("code", "shell_session", _shell_session,
                          {"alt": ["paragraph", "reference", "blockquote", "list"]})
    return md


def page_html(markdown: str) -> str:
    """Safe HTML of a page's Markdown (tables kept, math as MathML)."""
    return sanitise(_renderer().render(markdown))
