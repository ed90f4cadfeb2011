"""An incoming message's fate: every rule as an example, and the properties no input may
break (hypothesis), without any database or server."""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.core.types import (
    Automation,
    CorrelationMethod,
    RecordType,
    TrackingScope,
    TrackRule,
)
from crmsync.core.why import Correlated, Why
from crmsync.tracking.correlate import CorrelationSettings, KnownEmail
from crmsync.tracking.decide import (
    Bounce,
    Fate,
    Known,
    Link,
    Message,
    Policy,
    Skip,
    StoredKey,
    Track,
    decide,
    identify,
)
from crmsync.tracking.filters import BlockList
from crmsync.tracking.parse import Address, AttachmentPart, ParsedMessage
from crmsync.tracking.parties import RecordRef
from crmsync.tracking.threadindex import conversation_guid
from tests.unit.tracking.strategies import address_tuples, aware_datetimes, msgids, subjects

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
QUOTE = uuid.UUID("00000000-0000-4000-8000-00000000000a")
QUOTE_2 = uuid.UUID("00000000-0000-4000-8000-00000000000b")
DEAL = uuid.UUID("00000000-0000-4000-8000-00000000000d")
NANCY = uuid.UUID("00000000-0000-4000-8000-00000000000c")
QUOTE_ID = "<quote-1@acme.test>"
ALL = Policy(scope=TrackingScope.ALL)


def known_quote(activity_id: uuid.UUID = QUOTE, **changes: object) -> KnownEmail:
    values: dict[str, object] = {
        "activity_id": activity_id,
        "message_id": QUOTE_ID if activity_id == QUOTE else None,
        "regarding": (RecordType.OPPORTUNITY, DEAL),
        "participants": frozenset({"nancy@fabrikam.test", "admin@acme.test"}),
        "conversation_guid": None,
        "tracking_token": "CRM:0001234",
        "normalised_subject": "your quote",
        "occurred_at": NOW - timedelta(days=1),
    }
    values.update(changes)
    return KnownEmail(**values)  # type: ignore[arg-type]


def knowing(*emails: KnownEmail, nancy: bool = True) -> Known:
    """The quote (and ``emails``) tracked; Nancy a contact unless ``nancy`` is False."""
    known = Known()
    for email in (known_quote(), *emails):
        known.learn(email)
    if nancy:
        known.matches["nancy@fabrikam.test"] = [RecordRef(RecordType.CONTACT, NANCY)]
    return known


def reply(**changes: object) -> Message:
    values: dict[str, object] = {
        "message_id": "<reply-1@fabrikam.test>",
        "in_reply_to": QUOTE_ID,
        "references": (QUOTE_ID,),
        "subject": "Re: Your quote",
        "date": NOW - timedelta(hours=1),
        "from_": (Address("Nancy Buyer", "nancy@fabrikam.test"),),
        "to": (Address("", "admin@acme.test"),),
        "text_body": "Yes, please.",
    }
    values.update(changes)
    return Message.of(ParsedMessage(**values), "a" * 64)  # type: ignore[arg-type]


# -- one example per rule ----------------------------------------------------------------


def test_a_reply_to_a_tracked_email_is_tracked_against_what_that_one_regards() -> None:
    fate = decide(reply(), knowing(), Policy(), NOW)
    assert isinstance(fate, Track)
    assert fate.why.rule is TrackRule.CORRELATED
    assert fate.why.correlation == Correlated(
        CorrelationMethod.IN_REPLY_TO,
        QUOTE,
        message_id=QUOTE_ID,
        regarding=(RecordType.OPPORTUNITY, DEAL),
    )
    assert (fate.correlated_with, fate.regarding) == (QUOTE, (RecordType.OPPORTUNITY, DEAL))
    assert fate.why.sentence() == "correlated to a tracked email; correlated by in reply to"
    (sender, recipient) = fate.parties
    assert sender.record == RecordRef(RecordType.CONTACT, NANCY)
    assert recipient.record is None
    assert fate.key == "<reply-1@fabrikam.test>"
    assert fate.sender_record is None


def test_the_token_and_the_conversation_are_what_correlation_matched() -> None:
    by_token = decide(
        reply(in_reply_to=None, references=(), subject="Re: Your quote CRM:0001234"),
        knowing(),
        Policy(),
        NOW,
    )
    assert isinstance(by_token, Track)
    assert by_token.why.correlation is not None
    assert (by_token.why.correlation.method, by_token.why.correlation.token) == (
        CorrelationMethod.TRACKING_TOKEN,
        "CRM:0001234",
    )
    thread_index = "AQHYnHLVENTK1UHdsEyeUwZej/8cmg=="
    guid = conversation_guid(thread_index)
    outlook = reply(in_reply_to=None, references=(), thread_index=thread_index)
    by_conversation = decide(
        outlook, knowing(known_quote(QUOTE_2, conversation_guid=guid)), Policy(), NOW
    )
    assert isinstance(by_conversation, Track)
    assert by_conversation.why.correlation == Correlated(
        CorrelationMethod.CONVERSATION_INDEX,
        QUOTE_2,
        conversation_guid=guid,
        regarding=(RecordType.OPPORTUNITY, DEAL),
    )


def test_what_the_scope_takes_in_and_leaves_out() -> None:
    stranger = reply(in_reply_to=None, references=())
    in_scope = decide(stranger, knowing(), Policy(scope=TrackingScope.FROM_CRM_RECORDS), NOW)
    assert isinstance(in_scope, Track)
    assert (in_scope.why.rule, in_scope.why.sender_type) == (
        TrackRule.IN_SCOPE,
        RecordType.CONTACT,
    )
    out = decide(stranger, knowing(nancy=False), Policy(scope=TrackingScope.FROM_CRM_RECORDS), NOW)
    assert isinstance(out, Skip)
    assert out.why.rule is TrackRule.OUT_OF_SCOPE
    assert out.why.sentence() == "sender is not a lead, contact or account"
    disabled = decide(reply(), knowing(), Policy(scope=TrackingScope.NONE), NOW)
    assert isinstance(disabled, Skip)
    assert disabled.why.rule is TrackRule.TRACKING_DISABLED


def test_blocked_and_automated_mail_is_left_out_even_when_correlated() -> None:
    blocked = Policy(
        scope=TrackingScope.ALL, blocked_senders=BlockList(domains=frozenset({"fabrikam.test"}))
    )
    fate = decide(reply(), knowing(), blocked, NOW)
    assert isinstance(fate, Skip)
    assert fate.why.rule is TrackRule.BLOCKED_SENDER
    automated = decide(reply(auto_submitted="auto-replied"), knowing(), ALL, NOW)
    assert isinstance(automated, Skip)
    assert (automated.why.rule, automated.why.automation) == (
        TrackRule.AUTOMATED,
        Automation.AUTO_REPLY,
    )


def test_a_bounce_of_a_crm_email_marks_it_and_the_cutoff_comes_first() -> None:
    fate = decide(reply(), knowing(), ALL, NOW, bounce_of=QUOTE)
    assert fate == Bounce(QUOTE, fate.why)
    assert (fate.why.rule, fate.why.email_id) == (TrackRule.BOUNCE_OF_CRM_EMAIL, QUOTE)
    late = Policy(scope=TrackingScope.ALL, process_email_after=NOW)
    early = decide(reply(), knowing(), late, NOW, bounce_of=QUOTE)
    assert isinstance(early, Skip)
    assert early.why.rule is TrackRule.BEFORE_CUTOFF
    undated = decide(reply(date=None), knowing(), late, NOW + timedelta(seconds=1))
    assert isinstance(undated, Track)  # taken as received now, after the cut-off


def test_a_copy_links_an_untracked_message_stays_out_and_by_hand_undoes_that() -> None:
    message = reply()
    known = knowing()
    known.stored[QUOTE_ID] = StoredKey(QUOTE, None)
    copy_of = decide(reply(message_id=QUOTE_ID), known, ALL, NOW)
    assert copy_of == Link(QUOTE, copy_of.why, None)
    assert copy_of.why.rule is TrackRule.COPY_TRACKED
    known.untracked[message.parsed.message_id or ""] = "Ann"
    untracked = decide(message, known, ALL, NOW)
    assert isinstance(untracked, Skip)
    assert untracked.why.sentence() == "untracked by Ann"
    by_hand = decide(message, known, Policy(scope=TrackingScope.NONE), NOW, by_hand="Bob")
    assert isinstance(by_hand, Track)
    assert by_hand.why.sentence() == "tracked by Bob; correlated by in reply to"


def test_a_reused_message_id_is_kept_apart_and_names_the_email_holding_it() -> None:
    known = knowing()
    first = reply(message_id="<reused@old.test>", text_body="10 chairs")
    second = reply(message_id="<reused@old.test>", text_body="4 tables")
    earlier = uuid.uuid4()
    known.stored["<reused@old.test>"] = StoredKey(earlier, first.fingerprint)
    assert isinstance(decide(first, known, ALL, NOW), Link)
    fate = decide(second, known, ALL, NOW)
    assert isinstance(fate, Track)
    assert fate.key == identify(second, known).key != "<reused@old.test>"
    assert fate.why.collides_with == earlier
    assert fate.why.sentence().startswith(
        f"same Message-ID as email {earlier} but different content: kept as its own email"
    )
    # Before fingerprints were stored, the Message-ID alone decides.
    known.stored["<reused@old.test>"] = StoredKey(earlier, None)
    assert isinstance(decide(second, known, ALL, NOW), Link)


def test_an_unknown_sender_asks_for_a_record_once_and_attachments_follow_the_limits() -> None:
    parts = (
        AttachmentPart("invoice.exe", "application/octet-stream", 10, b"x" * 10),
        AttachmentPart("film.mov", "video/quicktime", 2000, b""),
        AttachmentPart("offer.pdf", "application/pdf", 100, b""),
    )
    policy = Policy(
        scope=TrackingScope.ALL,
        sender_record=RecordType.LEAD,
        blocked_extensions=frozenset({"exe"}),
        max_attachment_bytes=1000,
    )
    parsed = replace(reply().parsed, attachments=parts)
    message = Message.of(parsed, "b" * 64, ("1" * 64, "2" * 64, "3" * 64))
    first = decide(message, knowing(nancy=False), policy, NOW)
    assert isinstance(first, Track)
    assert first.sender_record is RecordType.LEAD
    assert first.kept_attachments == (2,)
    again = decide(message, knowing(), policy, NOW, created_sender=RecordType.LEAD)
    assert isinstance(again, Track)
    assert again.sender_record is None
    assert again.why.sentence() == (
        "correlated to a tracked email; correlated by in reply to; attachments not kept: "
        "invoice.exe (blocked type), film.mov (over 1000 bytes); created a lead for the sender"
    )


def test_a_planned_email_correlates_the_rest_of_its_batch() -> None:
    known = knowing()
    first = reply()
    fate = decide(first, known, Policy(), NOW)
    assert isinstance(fate, Track)
    planned = uuid.uuid4()
    known.plan(first, fate, planned)
    answer = reply(
        message_id="<reply-2@fabrikam.test>",
        in_reply_to="<reply-1@fabrikam.test>",
        references=(QUOTE_ID, "<reply-1@fabrikam.test>"),
    )
    later = decide(answer, known, Policy(), NOW)
    assert isinstance(later, Track)
    assert (later.correlated_with, later.regarding) == (planned, (RecordType.OPPORTUNITY, DEAL))
    assert decide(first, known, Policy(), NOW) == Link(
        planned, Why(TrackRule.COPY_TRACKED, email_id=planned)
    )


# -- properties --------------------------------------------------------------------------

POOL = ("<m1@x>", "<m2@x>", "<m3@y>")
pool_ids = st.sampled_from(POOL)
policies = st.builds(
    Policy,
    scope=st.sampled_from(TrackingScope),
    correlation=st.builds(CorrelationSettings, smart_matching=st.booleans()),
    blocked_senders=st.one_of(
        st.just(BlockList()), st.just(BlockList(domains=frozenset({"x.test"})))
    ),
    sender_record=st.sampled_from([None, RecordType.CONTACT, RecordType.LEAD]),
    process_email_after=st.one_of(st.none(), aware_datetimes),
)
messages = st.builds(
    lambda parsed, sha: Message.of(parsed, sha),
    st.builds(
        ParsedMessage,
        message_id=st.one_of(st.none(), pool_ids, msgids),
        in_reply_to=st.one_of(st.none(), pool_ids),
        references=st.lists(pool_ids, max_size=2).map(tuple),
        subject=subjects,
        date=st.one_of(st.none(), aware_datetimes),
        from_=address_tuples,
        to=address_tuples,
        auto_submitted=st.sampled_from([None, "auto-replied"]),
        text_body=st.sampled_from(["", "hello", "other"]),
    ),
    st.sampled_from(["a" * 64, "b" * 64]),
)


@st.composite
def knowns(draw: st.DrawFn) -> Known:
    known = Known()
    for message_id in draw(st.lists(pool_ids, unique=True)):
        known.learn(
            KnownEmail(
                activity_id=draw(st.uuids()),
                message_id=message_id,
                regarding=draw(st.one_of(st.none(), st.just((RecordType.CONTACT, NANCY)))),
                participants=frozenset(),
                conversation_guid=None,
                tracking_token=None,
                normalised_subject="",
                occurred_at=draw(aware_datetimes),
            )
        )
    for key in draw(st.lists(pool_ids, unique=True)):
        fingerprint = draw(st.sampled_from([None, "v1:" + "0" * 64]))
        known.stored[key] = StoredKey(draw(st.uuids()), fingerprint)
    for key in draw(st.lists(pool_ids, unique=True)):
        known.untracked[key] = draw(st.one_of(st.none(), st.just("Ann")))
    for address in draw(st.lists(st.sampled_from(["ann@a.example", "bob@x.test"]))):
        known.matches[address] = [RecordRef(RecordType.CONTACT, NANCY)]
    return known


bounces = st.one_of(st.none(), st.uuids())


@settings(max_examples=200)
@given(messages, knowns(), policies, aware_datetimes, bounces)
def test_the_fate_depends_on_its_inputs_only(
    message: Message, known: Known, policy: Policy, now: datetime, bounce_of: uuid.UUID | None
) -> None:
    before = copy.deepcopy(known)
    first = decide(message, known, policy, now, bounce_of=bounce_of)
    assert known == before  # deciding changes nothing it was given
    assert decide(message, copy.deepcopy(known), policy, now, bounce_of=bounce_of) == first
    assert first.why.rule.tracks == isinstance(first, Track | Link)
    assert first.why.sentence()


@settings(max_examples=200)
@given(messages, knowns(), policies, aware_datetimes, st.uuids())
def test_a_reply_naming_a_tracked_email_is_correlated_with_exactly_that_one(
    message: Message, known: Known, policy: Policy, now: datetime, quote: uuid.UUID
) -> None:
    known.learn(known_quote(quote, message_id=QUOTE_ID))
    parsed = replace(message.parsed, in_reply_to=QUOTE_ID)
    fate = decide(Message.of(parsed, message.raw_sha256), known, policy, now)
    if isinstance(fate, Track):
        assert fate.why.correlation is not None
        assert (fate.why.correlation.method, fate.why.correlation.email_id) == (
            CorrelationMethod.IN_REPLY_TO,
            quote,
        )
        assert fate.correlated_with == quote


@settings(max_examples=200)
@given(messages, knowns(), policies, aware_datetimes, st.uuids())
def test_a_bounce_of_a_crm_email_is_never_tracked(
    message: Message, known: Known, policy: Policy, now: datetime, original: uuid.UUID
) -> None:
    fate: Fate = decide(message, known, policy, now, bounce_of=original)
    assert not isinstance(fate, Track | Link)
    assert fate.why.rule in (TrackRule.BOUNCE_OF_CRM_EMAIL, TrackRule.BEFORE_CUTOFF)


@settings(max_examples=200)
@given(
    messages,
    knowns(),
    policies,
    aware_datetimes,
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650)),
)
def test_a_message_received_before_the_cutoff_is_never_tracked(
    message: Message, known: Known, policy: Policy, sent: datetime, late: timedelta
) -> None:
    parsed = replace(message.parsed, date=sent)
    cutoff = replace(policy, process_email_after=sent + late)
    fate = decide(Message.of(parsed, message.raw_sha256), known, cutoff, sent + late * 2)
    assert fate == Skip(fate.why)
    assert fate.why.rule is TrackRule.BEFORE_CUTOFF
