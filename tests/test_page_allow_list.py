"""The model's HTML goes through one allow-list, twice: the server's (service/page_html.py) and the web
page's copy of it (service/static/app.js), which must stay the same list. The one URL either keeps is a
link's href to the web, to mail or within the page; no attribute that fetches, no SVG or MathML animation.

The web page's side, in a real browser: test_model_html_reaches_the_page_only_through_its_allow_list
in tests/test_web_page.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lightocr_ingest.service import page_html as page_html_module
from lightocr_ingest.service.page_html import page_html, sanitise

APP_JS = Path(page_html_module.__file__).resolve().parent / "static" / "app.js"


def js_set(name: str) -> list[str]:
    """The strings of `const NAME = new Set([...]);` in app.js, in order (a repeat would show)."""
    source = APP_JS.read_text(encoding="utf-8")
    found = re.search(rf"const {name} = new Set\(\[(.*?)\]\);", source, re.DOTALL)
    assert found, f"app.js has no `const {name} = new Set([...]);`"
    body = re.sub(r"//[^\n]*", "", found.group(1))  # a comment's words are not names
    return re.findall(r'"([^"\\]*)"', body)


@pytest.mark.parametrize("name", ["ALLOWED_TAGS", "ALLOWED_ATTRIBUTES"])
def test_the_web_page_allows_exactly_what_the_server_allows(name):
    in_js = js_set(name)
    assert len(in_js) == len(set(in_js)), f"{name} in app.js names something twice"
    assert set(in_js) == getattr(page_html_module, name)


@pytest.mark.parametrize("href", [
    "javascript:alert(1)", " JaVaScRiPt:alert(1)", "&#106;avascript:alert(1)", "java\tscript:alert(1)",
    "\x01javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "data:image/png;base64,AAAA",
    "vbscript:msgbox(1)", "file:///etc/passwd", "/v1/documents", "../x", "evil.example/a", "//evil.example/a",
    "http:evil.example", "",
])
def test_a_link_keeps_its_text_but_not_an_unsafe_href(href):
    shown = sanitise(f'<a href="{href}">bad</a>')
    assert shown == "<a>bad</a>", shown


@pytest.mark.parametrize("href", ["https://ok.example/a?b=1", "http://ok.example/", " HTTPS://OK.example/",
                                  "mailto:someone@example.com", "#section-2"])
def test_a_safe_link_is_kept_trimmed_and_opens_apart_from_the_page(href):
    shown = sanitise(f'<a href="{href}" target="_self" rel="opener" ping="https://evil.example/p">ok</a>')
    assert shown == f'<a href="{href.strip().replace("&", "&amp;")}" rel="noopener noreferrer">ok</a>', shown


def test_only_a_link_carries_an_href_and_only_the_first_counts():
    assert sanitise('<span href="https://ok.example/">s</span>') == "<span>s</span>"
    assert sanitise('<a href="javascript:alert(1)" href="https://ok.example/">a</a>') == "<a>a</a>"


@pytest.mark.parametrize("markup, attribute", [
    ('<p style="background:url(https://evil.example/a)">x</p>', "style"),
    ('<table background="https://evil.example/b"><tr><td>t</td></tr></table>', "background"),
    ('<td poster="https://evil.example/c">t</td>', "poster"),
    ('<a href="https://ok.example/" ping="https://evil.example/d">ok</a>', "ping"),
    ('<span src="https://evil.example/e">s</span>', "src"),
    ('<mi xlink:href="javascript:alert(1)">x</mi>', "xlink:href"),
    ('<div srcset="https://evil.example/f 1x" onclick="alert(1)">d</div>', "srcset"),
    ('<div onclick="alert(1)">d</div>', "onclick"),
])
def test_attributes_that_fetch_or_run_are_dropped(markup, attribute):
    shown = sanitise(markup)
    assert f" {attribute}=" not in shown and "evil.example" not in shown and "javascript:" not in shown, shown


@pytest.mark.parametrize("markup, tags", [
    ('<svg><a><animate attributeName="href" values="javascript:alert(1)"/><text>x</text></a></svg>',
     ["svg", "animate", "text"]),
    ('<svg><set attributeName="href" to="javascript:alert(1)"/></svg>', ["svg", "set"]),
    ('<video poster="https://evil.example/c"></video>', ["video"]),
    ('<img src=x onerror=alert(1)>', ["img"]),
    ('<iframe src="https://evil.example"></iframe>', ["iframe"]),
    ('<math><maction actiontype="statusline" xlink:href="javascript:alert(1)"><mi>x</mi></maction></math>',
     ["maction"]),
    ('<form action="https://evil.example"><button formaction="https://evil.example">b</button></form>',
     ["form", "button"]),
])
def test_tags_off_the_list_are_shown_as_text(markup, tags):
    shown = sanitise(markup)
    for tag in tags:
        assert f"<{tag}" not in shown.lower() and f"&lt;{tag}" in shown.lower(), (tag, shown)
    assert "<a " not in shown, shown  # the <a> inside <svg> keeps no href


def test_markdown_links_render_as_safe_links_and_unsafe_ones_as_text():
    shown = page_html("See [the report](https://ok.example/r) or <https://ok.example/auto>, "
                      "not [this](javascript:alert(1)) nor [that](data:image/png;base64,AAAA).")
    assert '<a href="https://ok.example/r" rel="noopener noreferrer">the report</a>' in shown, shown
    assert '<a href="https://ok.example/auto" rel="noopener noreferrer">https://ok.example/auto</a>' in shown
    assert "javascript:" not in shown.replace("[this](javascript:alert(1))", ""), shown
    assert 'href="data:' not in shown and "<a>that</a>" in shown, shown
