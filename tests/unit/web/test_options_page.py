"""The personal options page: one's own tracking preferences, shown, saved, refused."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from lxml import html as lxml_html

from crmsync.core.types import TrackingScope
from crmsync.crm.models import User
from crmsync.crm.preferences import my_preferences
from crmsync.crm.settings import TrackingPreferences, UnknownSenderRecord
from crmsync.web.pages.options import TRACKING_FIELDS
from tests.conftest import Org
from tests.unit.web.conftest import assert_needs_login, log_in

CHOICES = {
    "track_scope": "from_crm_records",
    "create_for_unknown_sender": "lead",
    "leave_ambiguous_unresolved": "true",
}


def _checked(page: str) -> dict[str, str]:
    document = lxml_html.document_fromstring(page)
    return {
        radio.get("name"): radio.get("value")
        for radio in document.xpath("//form[@action='/options']//input[@type='radio'][@checked]")
    }


def _stored(web_org: Org) -> TrackingPreferences:
    with web_org.store.transaction() as session:
        return my_preferences(session, web_org.principal(session, web_org.admin_id))


def test_every_preference_is_on_the_form_with_every_value_explained() -> None:
    assert [field.name for field in TRACKING_FIELDS] == list(TrackingPreferences.model_fields)
    by_name = {field.name: field for field in TRACKING_FIELDS}
    offered = {choice.value for choice in by_name["track_scope"].choices}
    assert offered == {scope.value for scope in TrackingScope}
    unknown = {choice.value for choice in by_name["create_for_unknown_sender"].choices}
    assert unknown == {record.value for record in UnknownSenderRecord}
    for field in TRACKING_FIELDS:
        assert field.legend
        assert field.help
        assert all(choice.title and choice.help for choice in field.choices)


def test_the_form_shows_the_current_choices(browser: TestClient, web_org: Org) -> None:
    log_in(browser)
    page = browser.get("/options")
    assert page.status_code == 200
    assert _checked(page.text) == {
        "track_scope": "replies_to_crm",
        "create_for_unknown_sender": "none",
        "leave_ambiguous_unresolved": "false",
    }
    assert "Replies to CRM email" in page.text
    assert "Email from email-enabled records" in page.text
    assert 'aria-current="page">Options' in page.text


def test_saving_keeps_the_choices_and_says_saved(browser: TestClient, web_org: Org) -> None:
    token = log_in(browser)
    saved = browser.post("/options", data={**CHOICES, "csrf_token": token})
    assert saved.status_code == 303
    assert saved.headers["location"] == "/options"
    stored = _stored(web_org)
    assert stored.track_scope is TrackingScope.FROM_CRM_RECORDS
    assert stored.create_for_unknown_sender is UnknownSenderRecord.LEAD
    assert stored.leave_ambiguous_unresolved is True
    again = browser.get("/options")
    assert _checked(again.text) == CHOICES
    assert "Saved" in again.text
    assert "Saved" not in browser.get("/options").text  # said once


def test_a_value_the_form_did_not_offer_is_refused_next_to_its_field(
    browser: TestClient, web_org: Org
) -> None:
    token = log_in(browser)
    bad = {"track_scope": "everything-please", "leave_ambiguous_unresolved": "maybe"}
    refused = browser.post("/options", data={**CHOICES, **bad, "csrf_token": token})
    assert refused.status_code == 422
    document = lxml_html.document_fromstring(refused.text)
    groups = document.xpath("//fieldset[contains(@class, 'has-error')]")
    assert [group.get("id") for group in groups] == [
        "option-track_scope",
        "option-leave_ambiguous_unresolved",
    ]
    for group in groups:
        assert "not one of the choices" in group.text_content()
    # What was chosen elsewhere is still chosen; nothing was saved.
    assert _checked(refused.text) == {"create_for_unknown_sender": "lead"}
    assert _stored(web_org) == TrackingPreferences()


def test_a_missing_choice_is_asked_for(browser: TestClient, web_org: Org) -> None:
    token = log_in(browser)
    data: dict[str, Any] = {"track_scope": "all", "csrf_token": token}
    refused = browser.post("/options", data=data)
    assert refused.status_code == 422
    document = lxml_html.document_fromstring(refused.text)
    wrong = {
        group.get("id") for group in document.xpath("//fieldset[contains(@class, 'has-error')]")
    }
    assert wrong == {"option-create_for_unknown_sender", "option-leave_ambiguous_unresolved"}
    assert _checked(refused.text) == {"track_scope": "all"}
    assert _stored(web_org).track_scope is TrackingScope.REPLIES_TO_CRM


OTHER = "http://evil.example"


def test_a_post_without_the_csrf_token_is_refused(browser: TestClient, web_org: Org) -> None:
    log_in(browser)
    refused = browser.post("/options", data=CHOICES)
    assert refused.status_code == 403
    assert "did not come from a page of this site" in refused.text
    forged = browser.post(
        "/options", data={**CHOICES, "csrf_token": "forged"}, headers={"Origin": OTHER}
    )
    assert forged.status_code == 403
    assert _stored(web_org) == TrackingPreferences()


def test_the_options_are_ones_own(browser: TestClient, web_org: Org) -> None:
    with web_org.store.transaction() as session:
        colleague_id = web_org.add_user(session, "colleague")
    token = log_in(browser)
    browser.post("/options", data={**CHOICES, "csrf_token": token})
    with web_org.store.transaction() as session:
        colleague = session.get(User, colleague_id)
        assert colleague is not None
        assert not colleague.settings


def test_the_page_needs_a_login(browser: TestClient) -> None:
    assert_needs_login(browser, "/options")
