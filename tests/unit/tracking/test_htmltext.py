"""html_to_text: the text of an HTML body, in time linear in its length."""

from __future__ import annotations

import time

import pytest

from crmsync.tracking.htmltext import html_to_text

SECONDS = 3.0  # generous: each of these took from seconds to minutes with html.parser


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hello&nbsp;<b>Ann</b></p><p>Bye</p>", "Hello Ann\n\nBye"),
        ("<title>x<body><p>kept &amp; shown</p>", "kept & shown"),
        ("<ul><li>one<li>two</ul>after", "- one\n- two\nafter"),
        ("<style>p { color: red }</style><script>if (a<b) x()</script>shown", "shown"),
        ("<script>var a = '</scr' + 'ipt>';</script>b", "b"),
        ("a <!-- <p>hidden</p> --> b", "a b"),
        ("a<br>b<br/>c", "a\nb\n\nc"),
        ("a <b", "a <b"),
        ("<p>x<!-- unterminated", "x<!-- unterminated"),
        ("<!DOCTYPE html><html><head><title>T</title></head><body>B</body></html>", "B"),
        ("<![CDATA[x]]>y", "y"),
        ("a</>b</ x>c<3d", "abc<3d"),
        ("<script>a</script >b<style>c</style", "b"),
        ("1 < 2 &lt; 3 & 4 &amp;amp;", "1 < 2 < 3 & 4 &amp;"),
        ('<a title="x > y">link</a>', "link"),
        ("<p>Ann &#x26; Bob &#38; &#0; &bogus;</p>", "Ann & Bob & \ufffd &bogus;"),
        ("<template><p>t</p></template>shown", "shown"),
        ("<div>a</div  ><DIV>b</DIV>", "a\n\nb"),
        ("", ""),
    ],
)
def test_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    [
        pytest.param("<a " * 20_000, id="unclosed start tags"),
        pytest.param("</" * 200_000, id="end tag openers"),
        pytest.param("<?" * 200_000, id="processing instructions"),
        pytest.param("<!" * 400_000, id="declarations"),
        pytest.param("<title>" + "</titl" * 100_000, id="title"),
        # Linear with html.parser too; kept so that it stays so.
        pytest.param("<div>" * 100_000 + "x" + "</div>" * 100_000, id="nested divs"),
    ],
)
def test_linear(html: str) -> None:
    started = time.perf_counter()
    html_to_text(html)

    assert time.perf_counter() - started < SECONDS
