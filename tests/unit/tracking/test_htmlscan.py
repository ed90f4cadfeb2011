"""htmlscan: linear tokens, and too_complex against what makes nh3 (html5ever) slow.

The pathological shapes below were found by fuzzing too_complex against nh3: each made
nh3 take one to thirty seconds at 20,000 repetitions while an earlier version of the scan
let it through. The realistic documents must stay fit for nh3.
"""

from __future__ import annotations

import time

import nh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.tracking.htmlscan import (
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    SPEC_RAW_TEXT,
    Kind,
    Token,
    _scan,
    tokens,
    too_complex,
)

SECONDS = 3.0  # generous: the scan takes tenths of a second on the largest of these


def _numbered(template: str, count: int) -> str:
    return "".join(template.format(n) for n in range(count))


# fmt: off
PATHOLOGICAL = [
    pytest.param("<div>" * 20_000 + "x" + "</div>" * 20_000, id="nested divs"),
    pytest.param(_numbered("<b id={}>", 20_000) + "<p>x" * 1_000, id="bold with attributes"),
    pytest.param("<b>" * 20_000 + "<p>x</p>" * 20_000, id="bold"),
    pytest.param("<font><div>" * 10_000, id="font and div"),
    pytest.param("<p><b>x</p>\n" * 20_000, id="bold reopened at each line break"),
    pytest.param("<button><b></button>" * 20_000, id="bold reopened in buttons"),
    pytest.param("<em>" + "</em><font color=red>" * 20_000, id="end tag of a closed em"),
    pytest.param("<p><b><b><ul></p>" * 10_000, id="list closing a paragraph"),
    pytest.param("<form><font color=red></form> x</style>" * 20_000, id="form taken out"),
    pytest.param("<i>" + "<path/></td><body></script></table><td>" * 20_000, id="cell outside"),
    pytest.param("</td></h2></ul><td><tr><b/><span>" * 20_000, id="row outside table"),
    pytest.param("<table><math>" + "<frameset></title>\"<html>" * 20_000, id="math frameset"),
    pytest.param("<i><svg><frameset>" + " </marquee><td>" * 20_000, id="svg cells"),
    pytest.param("<p><svg><applet> <font id=1>" + "</xmp><a href=x>" * 20_000, id="svg font"),
    pytest.param(
        "</b>" + "</foreignObject></select><foreignObject><i></em><em><b/>" * 10_000,
        id="foreignObject in HTML",
    ),
    pytest.param(
        "<ul><object><foreignObject>x<ruby>"
        + "</td></button></xmp><p/><rt></td><b><br>" * 20_000,
        id="ruby text closing paragraphs",
    ),
    pytest.param("</math>" + "</br><table><hr>" * 20_000, id="fostered rules"),
    pytest.param(" " + "<b/></b><table>x" * 20_000, id="fostered text"),
    pytest.param("<table>" + "<form>x" * 20_000, id="forms in a table"),
    pytest.param("<div " + " ".join(f"a{n}=1" for n in range(50_000)) + ">", id="attributes"),
    pytest.param(_numbered("<html a{}=1>", 20_000), id="merged attributes"),
    pytest.param("<svg><style>" + "<div>" * 20_000, id="raw text in svg"),
]
# fmt: on


@pytest.mark.parametrize("html", PATHOLOGICAL)
def test_pathological_html_is_too_complex(html: str) -> None:
    too_complex.cache_clear()
    started = time.perf_counter()

    assert too_complex(html) is not None
    assert time.perf_counter() - started < SECONDS


def _gmail_thread(replies: int) -> str:
    inner = '<div dir="ltr">Last reply</div>'
    for n in range(replies):
        inner = (
            f'<div dir="ltr"><div>Reply {n} <b>bold</b> <a href="https://x.example/{n}">a</a>'
            '</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Ann'
            ' wrote:<br></div><blockquote class="gmail_quote" style="margin:0 0 0 .8ex">'
            f"{inner}</blockquote></div></div>"
        )
    return f"<html><body>{inner * 3}</body></html>"


_OUTLOOK_PARAGRAPH = (
    "<p class=MsoNormal><span lang=EN-US style='font-size:11.0pt;font-family:\"Calibri\"'>"
    "Some text &amp; more<o:p></o:p></span></p>\n"
)
_OUTLOOK = (
    '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>'
    "<style><!-- p.MsoNormal {margin:0cm;} --></style><!--[if gte mso 9]><xml>"
    '<o:shapedefaults v:ext="edit" spidmax="1026" /></xml><![endif]--></head>'
    '<body lang=DE link="#0563C1"><div class=WordSection1>'
    + _OUTLOOK_PARAGRAPH * 1_500
    + "<p class=MsoListParagraph><![if !supportLists]><span>1.</span><![endif]>Item</p>" * 200
    + "</div></body></html>"
)
_CELL = (
    '<table role="presentation" width="100%"><tr><td align="center" style="padding:10px">'
    '<a href="https://x.example/c"><img src="https://x.example/i.png" width="600"></a>'
    '<p style="margin:0">Headline <strong>bold</strong> <span>span</span></p></td></tr></table>'
)


def _newsletter() -> str:
    nested = _CELL
    for _ in range(8):
        nested = f'<table width="100%"><tr><td><div>{nested}</div></td></tr></table>'
    return "<!DOCTYPE html><html><body>" + (nested + _CELL * 5) * 60 + "</body></html>"


_SLOPPY = (
    "<html><body><font face=Arial size=2>"
    + "".join(
        f"<p>Paragraph {n} <font color=#{n % 7}00000>colored<br>line"
        + ("<ul><li>a<li>b<li>c</ul>" if n % 10 == 0 else "")
        + ("<table border=1><tr><td>a<td>b<tr><td>c<td>d</table>" if n % 15 == 0 else "")
        for n in range(2_000)
    )
    + "</font></body></html>"
)
_SVG_ICON = (
    '<svg width="24" height="24" viewBox="0 0 24 24"><title>Icon</title><g fill="none">'
    '<path d="M1 1L2 2"/><circle cx="1" cy="1" r="1"/></g></svg>'
)

REALISTIC = [
    pytest.param(_gmail_thread(60), id="gmail thread 60 replies deep"),
    pytest.param(_OUTLOOK, id="outlook"),
    pytest.param(_newsletter(), id="newsletter of nested tables"),
    pytest.param(_SLOPPY, id="unclosed paragraphs, fonts, items and cells"),
    pytest.param("<div>" + f"<p>text {_SVG_ICON} more</p>" * 2_000 + "</div>", id="svg icons"),
    pytest.param("<body>" + "<p>paragraph left open" * 10_000, id="unclosed paragraphs"),
    pytest.param("<table>" + "<tr><td>a<td>b<td><ul><li>x<li>y</ul>" * 3_000, id="open cells"),
    pytest.param(
        "<div>" * (MAX_DEPTH - 10) + "x" + "</div>" * (MAX_DEPTH - 10) + "<p>y</p>" * 3_000,
        id="deep but not too deep",
    ),
]


@pytest.mark.parametrize("html", REALISTIC)
def test_realistic_html_is_fit_for_nh3(html: str) -> None:
    assert html.count("<") > 2_000  # past the shortcut for small bodies: really scanned

    assert _scan(html) is None
    started = time.perf_counter()
    nh3.clean(html)
    assert time.perf_counter() - started < SECONDS


def test_a_small_body_is_fit_without_a_scan() -> None:
    assert too_complex("<div>" * 1_000) is None  # 1,000 open <div>s take nh3 2 ms
    assert too_complex("<div>" * 5_000) == f"nested deeper than {MAX_DEPTH} elements"


def test_what_the_scan_counts() -> None:
    tag = "<div " + " ".join(f"a{n}" for n in range(MAX_ATTRIBUTES + 1)) + ">"

    assert _scan(tag) == f"over {MAX_ATTRIBUTES} attributes on one tag"
    assert _scan(tag.replace("a1 ", "")) is None
    assert _scan("<div>" * MAX_DEPTH) is None
    assert _scan("<div>" * (MAX_DEPTH + 1)) == f"nested deeper than {MAX_DEPTH} elements"


def test_tokens() -> None:
    html = 'a<B title="x>y" /><!-- <i> --></b ><?pi><style>p<i></style>&amp;<3'
    style = html.index("<style>")
    after = html.index("&amp;")

    assert list(tokens(html, SPEC_RAW_TEXT)) == [
        Token(Kind.TEXT, 0, 1),
        Token(Kind.START, 1, 18, "b", ' title="x>y" ', self_closing=True),
        Token(Kind.END, 30, 35, "b", " "),
        Token(Kind.START, style, style + 7, "style"),
        Token(Kind.RAW_TEXT, style + 7, style + 11, "style"),
        Token(Kind.END, style + 11, after, "style"),
        Token(Kind.TEXT, after, len(html)),
    ]


@pytest.mark.parametrize(
    ("html", "last"),
    [
        ("a <b", Token(Kind.TEXT, 2, 4)),
        ("a <!-- b", Token(Kind.TEXT, 2, 8)),
        ("a <!b", Token(Kind.TEXT, 2, 5)),
        ('a <b c="d>e', Token(Kind.TEXT, 2, 11)),
        ("<script>x", Token(Kind.RAW_TEXT, 8, 9, "script")),
    ],
)
def test_constructs_left_open_at_the_end(html: str, last: Token) -> None:
    assert list(tokens(html, SPEC_RAW_TEXT))[-1] == last


HTML_PIECES = st.sampled_from(
    ["<", ">", "/", "!", "-", "?", '"', "'", "=", " ", "\n", "a", "b", "div", "p", "svg",
     "table", "td", "script", "style", "title", "<!--", "-->", "<![CDATA[", "]]>", "&amp;"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(HTML_PIECES, max_size=60).map("".join))
def test_tokens_cover_the_input_in_order_and_never_raise(html: str) -> None:
    position = 0
    for token in tokens(html, SPEC_RAW_TEXT):
        assert token.start >= position
        assert token.end > token.start
        position = token.end
    assert _scan(html) is None or isinstance(_scan(html), str)
