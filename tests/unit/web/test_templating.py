"""The template environment: escaping, the one sanitizer, dates, flash messages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import jinja2
import pytest
from fastapi.testclient import TestClient

from crmsync.web import flash
from crmsync.web.templating import format_date, format_datetime, make_environment
from tests.unit.web.conftest import log_in


def _render(source: str, **context: object) -> str:
    return make_environment().from_string(source).render(**context)


def test_everything_is_escaped_by_default() -> None:
    assert _render("{{ x }}", x="<b>Fabrikam & Co</b>") == "&lt;b&gt;Fabrikam &amp; Co&lt;/b&gt;"


def test_safe_html_is_the_sanitizer() -> None:
    hostile = '<p onclick="steal()">Hi <a href="javascript:x()">there</a></p><script>x()</script>'
    shown = _render("{{ body|safe_html }}", body=hostile)
    assert "<p>Hi" in shown
    assert "onclick" not in shown
    assert "javascript:" not in shown
    assert "<script" not in shown
    assert _render("{{ none|safe_html }}", none=None) == ""


def test_a_misspelt_name_fails_instead_of_rendering_nothing() -> None:
    with pytest.raises(jinja2.UndefinedError):
        _render("{{ acount.name }}")


def test_dates_are_shown_in_utc() -> None:
    assert format_datetime(datetime(2026, 12, 6, 14, 5, tzinfo=UTC)) == "6 Dec 2026, 14:05"
    paris = timezone(timedelta(hours=1))
    assert format_datetime(datetime(2026, 12, 6, 15, 5, tzinfo=paris)) == "6 Dec 2026, 14:05"
    assert format_datetime(datetime(2026, 1, 2, 3, 4)) == "2 Jan 2026, 03:04"  # naive: UTC
    assert format_datetime(None) == ""
    assert format_date(date(2026, 12, 6)) == "6 Dec 2026"
    assert format_date(datetime(2026, 12, 6, 23, 30, tzinfo=paris)) == "6 Dec 2026"
    assert _render("{{ when|datetime }}", when=datetime(2026, 12, 6, 14, 5, tzinfo=UTC)) == (
        "6 Dec 2026, 14:05"
    )


def test_a_flash_message_is_shown_once(browser: TestClient) -> None:
    token = log_in(browser)
    browser.post("/logout", data={"csrf_token": token})
    assert "You have logged out." in browser.get("/login").text
    assert "You have logged out." not in browser.get("/login").text


def test_a_forged_flash_cookie_shows_nothing(browser: TestClient) -> None:
    # [["error", "Call 0800 NOW"]], signed by nobody
    browser.cookies.set(flash.COOKIE, "W1siZXJyb3IiLCJDYWxsIDA4MDAgTk9XIl1d.forged")
    page = browser.get("/login").text
    assert "notice-error" not in page
    browser.cookies.set(flash.COOKIE, "not even base64!!.x")
    assert browser.get("/login").status_code == 200
