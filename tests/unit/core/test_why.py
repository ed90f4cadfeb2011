"""Why a message was tracked, as data: what the ledger says of it, and what is stored."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from crmsync.core.types import (
    AttachmentRefusal,
    Automation,
    CorrelationMethod,
    RecordType,
    TrackingScope,
    TrackRule,
)
from crmsync.core.why import Correlated, RefusedAttachment, Why

EARLIER = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEAL = uuid.UUID("00000000-0000-4000-8000-000000000002")

optional_ids = st.one_of(st.none(), st.uuids())
correlations = st.builds(
    Correlated,
    method=st.sampled_from(CorrelationMethod),
    email_id=st.uuids(),
    message_id=st.one_of(st.none(), st.text(max_size=20)),
    token=st.one_of(st.none(), st.text(max_size=12)),
    conversation_guid=st.one_of(st.none(), st.text(max_size=36)),
    regarding=st.one_of(st.none(), st.tuples(st.sampled_from(RecordType), st.uuids())),
)
refusals = st.builds(
    RefusedAttachment,
    filename=st.text(max_size=20),
    refusal=st.sampled_from(AttachmentRefusal),
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=10**10)),
)
whys = st.builds(
    Why,
    rule=st.sampled_from(TrackRule),
    scope=st.one_of(st.none(), st.sampled_from(TrackingScope)),
    sender_type=st.one_of(st.none(), st.sampled_from(RecordType)),
    automation=st.one_of(st.none(), st.sampled_from(Automation)),
    person=st.one_of(st.none(), st.text(max_size=20)),
    email_id=optional_ids,
    collides_with=optional_ids,
    correlation=st.one_of(st.none(), correlations),
    created_sender=st.one_of(st.none(), st.sampled_from(RecordType)),
    refused_attachments=st.lists(refusals, max_size=3).map(tuple),
)


@given(whys)
def test_what_is_stored_reads_back_as_it_was(why: Why) -> None:
    assert Why.from_json(why.as_json()) == why


@given(whys)
def test_every_why_has_a_sentence(why: Why) -> None:
    assert why.sentence()


def test_what_this_version_cannot_read_is_no_reason_at_all() -> None:
    assert Why.from_json(None) is None
    assert Why.from_json({}) is None
    assert Why.from_json({"rule": "decided_by_a_newer_version"}) is None
    assert Why.from_json({"rule": "correlated", "correlation": {"method": "in_reply_to"}}) is None


def test_the_sentences_are_the_ones_ledgers_have_always_said() -> None:
    reply = Correlated(CorrelationMethod.IN_REPLY_TO, EARLIER, "<q1@acme.test>")
    assert Why(TrackRule.CORRELATED, correlation=reply).sentence() == (
        "correlated to a tracked email; correlated by in reply to"
    )
    assert Why(TrackRule.TRACKED_BY_HAND, person="Ann", correlation=reply).sentence() == (
        "tracked by Ann; correlated by in reply to"
    )
    assert Why(TrackRule.IN_SCOPE, scope=TrackingScope.ALL).sentence() == "all email is tracked"
    scoped = Why(TrackRule.IN_SCOPE, TrackingScope.FROM_CRM_RECORDS, RecordType.ACCOUNT)
    assert scoped.sentence() == "sender is an account"
    assert Why(TrackRule.OUT_OF_SCOPE, TrackingScope.FROM_CRM_RECORDS).sentence() == (
        "sender is not a lead, contact or account"
    )
    assert Why(TrackRule.UNTRACKED_BY_PERSON).sentence() == "untracked by a person"
    assert Why(TrackRule.AUTOMATED, automation=Automation.BOUNCE).sentence() == (
        "automated: bounce"
    )
    kept_apart = Why(
        TrackRule.IN_SCOPE,
        TrackingScope.ALL,
        collides_with=EARLIER,
        refused_attachments=(
            RefusedAttachment("invoice.exe", AttachmentRefusal.BLOCKED_TYPE),
            RefusedAttachment("film.mov", AttachmentRefusal.TOO_LARGE, 1000),
        ),
        created_sender=RecordType.LEAD,
    )
    assert kept_apart.sentence() == (
        f"same Message-ID as email {EARLIER} but different content: kept as its own email; "
        "all email is tracked; attachments not kept: invoice.exe (blocked type), "
        "film.mov (over 1000 bytes); created a lead for the sender"
    )
    left_out = Why(TrackRule.BLOCKED_SENDER, collides_with=EARLIER)
    assert left_out.sentence() == (
        f"same Message-ID as email {EARLIER} but different content; sender blocked"
    )


def test_the_stored_form_names_what_was_matched() -> None:
    stored = Why(
        TrackRule.CORRELATED,
        correlation=Correlated(
            CorrelationMethod.TRACKING_TOKEN,
            EARLIER,
            token="CRM:0001234",
            regarding=(RecordType.OPPORTUNITY, DEAL),
        ),
    ).as_json()
    assert stored == {
        "rule": "correlated",
        "correlation": {
            "method": "tracking_token",
            "email_id": str(EARLIER),
            "token": "CRM:0001234",
            "regarding": ["opportunity", str(DEAL)],
        },
    }
