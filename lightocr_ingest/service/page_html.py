"""A page's Markdown as safe HTML for the web page: headings, paragraphs, the model's HTML
tables, and LaTeX as MathML (which browsers draw natively: no script, no build step).

The model's output is text from a document, and a document can hold anything, so only an
allow-list of tags and attributes survives; everything else is shown as text.
"""

from __future__ import annotations

import functools
import html
from html.parser import HTMLParser

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
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


@functools.cache
def _renderer():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    dollarmath_plugin(md, renderer=_math, allow_digits=False)
    return md


def page_html(markdown: str) -> str:
    """Safe HTML of a page's Markdown (tables kept, math as MathML)."""
    return sanitise(_renderer().render(markdown))
