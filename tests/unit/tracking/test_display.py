"""display_html: sanitized HTML, or escaped text when the HTML is beyond what nh3 does fast."""

from __future__ import annotations

import time

import pytest

from crmsync.tracking.display import display_html, safe_html
from crmsync.tracking.htmlscan import MAX_DEPTH
from crmsync.tracking.parse import ParsedMessage, parse_message

SECONDS = 3.0  # generous: nh3 took 2 s on 20,000 nested <div>s and 11 s on 50,000


def _html_message(body: str) -> bytes:
    return (
        b"From: a@x.example\r\nSubject: s\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + body.encode()
    )


def test_html_is_sanitized() -> None:
    parsed = ParsedMessage(html_body='<p onclick="x()">Hi <script>x()</script><b>Ann</b></p>')

    assert display_html(parsed) == "<p>Hi <b>Ann</b></p>"


def test_text_is_escaped() -> None:
    assert display_html(ParsedMessage(text_body="a<b\nc")) == "a&lt;b<br>\nc"


def test_ordinary_nesting_is_sanitized() -> None:
    html = "<div>" * (MAX_DEPTH // 2) + "<b>deep</b>" + "</div>" * (MAX_DEPTH // 2)

    assert display_html(ParsedMessage(html_body=html, text_body="deep")) == html


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<div>" * 20_000 + "x" + "</div>" * 20_000, id="20,000 nested divs"),
        pytest.param("<div>" * 50_000 + "x" + "</div>" * 50_000, id="50,000 nested divs"),
        pytest.param("<div>" * 50_000 + "x", id="50,000 unclosed divs"),
        pytest.param("".join(f"<b id={i}>" for i in range(20_000)) + "<p>x" * 1_000, id="bold"),
        pytest.param("<font><div>" * 10_000 + "x", id="misnested"),
        pytest.param(("<div><table></div>" * 100 + "x") * 100, id="ignored end tags"),
        pytest.param("<div " + " ".join(f"a{i}=1" for i in range(50_000)) + ">x", id="attributes"),
    ],
)
def test_html_too_deep_for_nh3_is_shown_as_text_and_flagged(body: str) -> None:
    started = time.perf_counter()
    parsed = parse_message(_html_message(body))
    shown = display_html(parsed)

    assert time.perf_counter() - started < SECONDS
    assert parsed.html_body == body  # the raw HTML is kept
    assert any(defect.startswith("HTML body ") for defect in parsed.defects)
    assert "<div" not in shown
    assert "x" in shown


def test_a_text_alternative_is_what_is_shown_instead() -> None:
    parsed = ParsedMessage(html_body="<div>" * 50_000, text_body="the <text> part")

    assert display_html(parsed) == "the &lt;text&gt; part"


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ('<img src=x onerror="alert(1)">', '<img src="x">'),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
        ("<script>alert(1)</script>after", "after"),
        ("<iframe src=//evil.example></iframe>ok", "ok"),
        ("1 < 2 & 3", "1 &lt; 2 &amp; 3"),
    ],
)
def test_descriptions_written_through_the_api_are_made_safe(written: str, shown: str) -> None:
    assert safe_html(written) == shown


def test_a_description_too_complex_to_sanitize_is_shown_as_text() -> None:
    written = "<div>" * 50_000 + "<script>x()</script>deep" + "</div>" * 50_000
    started = time.monotonic()
    shown = safe_html(written)
    assert time.monotonic() - started < SECONDS
    assert "<div>" not in shown
    assert "<script>" not in shown
    assert "deep" in shown
