"""The performance dashboard page and its chart data, as an administrator sees them (and a
salesperson, who finds neither)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from crmsync.core.types import Channel
from crmsync.crm.auth import hash_password
from crmsync.crm.db import utcnow
from crmsync.crm.models import User
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.crm.test_stats import add_pass, make_boxes
from tests.unit.web.conftest import assert_needs_login, log_in


def test_without_passes_the_page_says_so_and_draws_nothing(browser: TestClient) -> None:
    log_in(browser)
    page = browser.get("/admin/dashboard")
    assert page.status_code == 200
    assert "No passes in this window" in page.text
    assert 'data-chart="' not in page.text
    assert 'aria-current="page">24 hours</a>' in page.text


def test_the_page_totals_the_window_and_its_data_has_the_series(
    browser: TestClient, web_org: Org
) -> None:
    boxes = make_boxes(web_org)
    now = utcnow()
    add_pass(web_org, boxes.ann, at=now - timedelta(minutes=5), fetched=6, tracked=5, failed=1)
    add_pass(
        web_org,
        boxes.ann,
        at=now - timedelta(minutes=3),
        previous_success=now - timedelta(minutes=4),
        pushed_after=0.8,
        fetched=1,
        tracked=1,
    )
    add_pass(web_org, boxes.bob, at=now - timedelta(minutes=2), channel=Channel.OUTGOING, sent=2)
    log_in(browser)

    page = browser.get("/admin/dashboard")
    assert page.status_code == 200
    assert "No passes in this window" not in page.text
    for chart in ("messages", "sent", "lag", "push"):
        assert f'data-chart="{chart}"' in page.text
    assert 'data-src="/admin/dashboard/data?window=24h"' in page.text
    assert "Dovecot IMAP" in page.text  # the profile filter and the by-profile table

    data = browser.get("/admin/dashboard/data?window=24h").json()
    assert len(data["buckets"]) == 24
    assert (sum(data["tracked"]), sum(data["failed"]), sum(data["sent"])) == (6, 1, 2)
    assert [line["mailbox"] for line in data["lag"]] == ["Ann's mailbox"]
    assert max(v for v in data["pushMedian"] if v is not None) == 0.8


def test_the_window_and_profile_narrow_what_is_shown(browser: TestClient, web_org: Org) -> None:
    boxes = make_boxes(web_org)
    now = utcnow()
    add_pass(web_org, boxes.ann, at=now - timedelta(days=3), tracked=4)
    add_pass(web_org, boxes.bob, at=now - timedelta(minutes=1), tracked=9)
    log_in(browser)

    week = browser.get("/admin/dashboard/data?window=7d").json()
    assert (len(week["buckets"]), week["bucketSeconds"]) == (28, 6 * 3600)
    assert sum(week["tracked"]) == 13
    pop_only = browser.get(f"/admin/dashboard/data?window=7d&profile={boxes.pop_profile}").json()
    assert sum(pop_only["tracked"]) == 9

    page = browser.get(f"/admin/dashboard?window=7d&profile={boxes.pop_profile}")
    assert "last 7 days" in page.text
    assert (
        f'data-src="/admin/dashboard/data?window=7d&amp;profile={boxes.pop_profile}"' in page.text
    )
    # Another window keeps the profile chosen.
    assert f'href="/admin/dashboard?window=30d&amp;profile={boxes.pop_profile}"' in page.text


def test_an_unknown_window_or_profile_is_refused(browser: TestClient) -> None:
    log_in(browser)
    assert browser.get("/admin/dashboard?window=1y").status_code == 400
    assert browser.get("/admin/dashboard?profile=not-an-id").status_code == 404
    unknown = "00000000-0000-0000-0000-000000000001"
    assert browser.get(f"/admin/dashboard/data?profile={unknown}").status_code == 404


def test_a_salesperson_gets_404_and_the_logged_out_the_login_form(
    browser: TestClient, web_store: Store, web_org: Org
) -> None:
    assert_needs_login(browser, "/admin/dashboard")
    with web_store.transaction() as session:
        user = session.get(User, web_org.add_user(session, "sally"))
        assert user is not None
        user.password_hash = hash_password("sally-password")
    log_in(browser, "sally", "sally-password")
    for path in ("/admin/dashboard", "/admin/dashboard?window=30d", "/admin/dashboard/data"):
        response = browser.get(path)
        assert response.status_code == 404, path
        assert "Performance" not in response.text
