"""Correlation order: In-Reply-To/References → token → Thread-Index → smart matching."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.core.types import CorrelationMethod, RecordType
from crmsync.tracking.correlate import (
    Candidates,
    Correlation,
    CorrelationKeys,
    CorrelationSettings,
    KnownEmail,
    correlate,
    participants,
    subject_key,
    wanted_keys,
)
from crmsync.tracking.parse import Address, ParsedMessage
from tests.unit.tracking.strategies import THREAD_INDEXES, correlation_messages, known_emails

M = CorrelationMethod
T0 = datetime(2024, 1, 1, tzinfo=UTC)
GUID = "10d4cad5-41dd-b04c-9e53-065e8fff1c9a"  # of THREAD_INDEXES[0]
DEFAULT = CorrelationSettings()
SMART = CorrelationSettings(smart_matching=True)


def known(n: int, *, hours: int = 0, people: tuple[str, ...] = (), subject: str = "") -> KnownEmail:
    return KnownEmail(
        activity_id=uuid.UUID(int=n),
        message_id=f"<{n}@crm.example>",
        regarding=(RecordType.ACCOUNT, uuid.UUID(int=1000 + n)),
        participants=frozenset(people),
        conversation_guid=None,
        tracking_token=None,
        normalised_subject=subject,
        occurred_at=T0 + timedelta(hours=hours),
    )


REPLY = ParsedMessage(
    message_id="<reply@b.example>",
    in_reply_to="<1@crm.example>",
    references=("<0@crm.example>", "<1@crm.example>", "<2@crm.example>"),
    subject="RE: Quote CRM:0001234",
    from_=(Address("Ann", "Ann@A.example"),),
    to=(Address("", "sales@crm.example"),),
    cc=(Address("", "bob@a.example"),),
    thread_index=THREAD_INDEXES[0],
)


def test_wanted_keys() -> None:
    assert wanted_keys(REPLY, SMART) == CorrelationKeys(
        message_ids=("<1@crm.example>", "<2@crm.example>", "<0@crm.example>"),
        token="CRM:0001234",
        conversation_guid=GUID,
        normalised_subject="quote",
    )
    off = CorrelationSettings(use_tracking_token=False, use_conversation_index=False)
    assert wanted_keys(REPLY, off) == CorrelationKeys(
        message_ids=("<1@crm.example>", "<2@crm.example>", "<0@crm.example>"),
        token=None,
        conversation_guid=None,
        normalised_subject=None,
    )


def test_subject_key_and_participants() -> None:
    assert subject_key("AW: RE: [crm:0001234] Quote (CRM:0000001)") == "quote"
    assert participants(["Ann@A.example", "not an address", "<bob@a.example>"]) == {
        "ann@a.example",
        "bob@a.example",
    }


def test_in_reply_to_first() -> None:
    candidates = Candidates(
        by_message_id={"<1@crm.example>": known(1), "<2@crm.example>": known(2)},
        by_token={"CRM:0001234": known(9)},
    )

    assert correlate(REPLY, candidates, DEFAULT) == Correlation(M.IN_REPLY_TO, known(1))


def test_references_newest_first() -> None:
    candidates = Candidates(
        by_message_id={"<0@crm.example>": known(0), "<2@crm.example>": known(2)},
    )

    assert correlate(REPLY, candidates, DEFAULT) == Correlation(M.IN_REPLY_TO, known(2))


def test_token_when_no_message_id_is_known() -> None:
    candidates = Candidates(
        by_token={"CRM:0001234": known(9)},
        by_conversation={GUID: [known(7)]},
    )

    assert correlate(REPLY, candidates, DEFAULT) == Correlation(M.TRACKING_TOKEN, known(9))


def test_conversation_index_newest_wins() -> None:
    candidates = Candidates(
        by_token={"CRM:0001234": known(9)},
        by_conversation={GUID: [known(5, hours=1), known(6, hours=3), known(7, hours=2)]},
    )
    no_token = CorrelationSettings(use_tracking_token=False)

    result = correlate(REPLY, candidates, no_token)

    assert result == Correlation(M.CONVERSATION_INDEX, known(6, hours=3))


def test_smart_matching_needs_subject_and_shared_participants() -> None:
    one_shared = known(3, hours=5, people=("ann@a.example",), subject="quote")
    two_shared = known(4, hours=1, people=("ann@a.example", "bob@a.example"), subject="quote")
    older = known(5, hours=0, people=("ann@a.example", "sales@crm.example"), subject="quote")
    candidates = Candidates(by_subject={"quote": [one_shared, two_shared, older]})
    no_token = CorrelationSettings(use_tracking_token=False, smart_matching=True)

    assert correlate(REPLY, candidates, no_token) == Correlation(M.SMART_MATCHING, two_shared)
    assert correlate(REPLY, candidates, DEFAULT) == Correlation(M.NONE, None)
    strict = CorrelationSettings(smart_matching=True, smart_min_shared_participants=3)
    assert correlate(REPLY, candidates, strict) == Correlation(M.NONE, None)


def test_nothing_matches() -> None:
    assert correlate(REPLY, Candidates(), SMART) == Correlation(M.NONE, None)
    assert correlate(ParsedMessage(), Candidates(), SMART) == Correlation(M.NONE, None)


correlation_settings = st.builds(
    CorrelationSettings,
    use_tracking_token=st.booleans(),
    use_conversation_index=st.booleans(),
    smart_matching=st.booleans(),
    smart_min_shared_participants=st.integers(0, 3),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[ParsedMessage, Candidates, CorrelationSettings]:
    """A message, settings, and candidates found under some of the message's own keys."""
    msg = draw(correlation_messages)
    chosen = draw(correlation_settings)
    keys = wanted_keys(msg, chosen)
    maybe = st.booleans()
    by_message_id = {mid: draw(known_emails) for mid in keys.message_ids if draw(maybe)}
    by_message_id.update(draw(st.dictionaries(st.text(max_size=6), known_emails, max_size=2)))
    by_token = {keys.token: draw(known_emails)} if keys.token and draw(maybe) else {}
    guid = keys.conversation_guid
    by_conversation = {guid: draw(st.lists(known_emails, max_size=3))} if guid else {}
    mine = sorted(participants(a.address for a in (*msg.from_, *msg.to, *msg.cc)))
    people = st.frozensets(st.sampled_from([*mine, "stranger@z.example"]), max_size=4)
    by_subject = {}
    if keys.normalised_subject:
        emails = [
            replace(draw(known_emails), participants=draw(people))
            for _ in range(draw(st.integers(0, 3)))
        ]
        by_subject = {keys.normalised_subject: emails}
    return msg, Candidates(by_message_id, by_token, by_conversation, by_subject), chosen


def _newest(emails: list[KnownEmail]) -> KnownEmail:
    return max(emails, key=lambda e: (e.occurred_at, str(e.activity_id)))


@settings(max_examples=150)
@given(cases())
def test_the_first_applicable_method_is_chosen(
    case: tuple[ParsedMessage, Candidates, CorrelationSettings],
) -> None:
    msg, candidates, chosen = case
    keys = wanted_keys(msg, chosen)
    by_id = [candidates.by_message_id[m] for m in keys.message_ids if m in candidates.by_message_id]
    token_match = candidates.by_token.get(keys.token or "")
    by_token = [token_match] if token_match is not None else []
    by_guid = list(candidates.by_conversation.get(keys.conversation_guid or "", []))
    mine = participants(a.address for a in (*msg.from_, *msg.to, *msg.cc))
    needed = max(1, chosen.smart_min_shared_participants)
    by_subject = [
        e
        for e in candidates.by_subject.get(keys.normalised_subject or "", [])
        if len(e.participants & mine) >= needed
    ]
    ladder = [
        (M.IN_REPLY_TO, by_id[:1]),
        (M.TRACKING_TOKEN, by_token),
        (M.CONVERSATION_INDEX, [_newest(by_guid)] if by_guid else []),
        (M.SMART_MATCHING, [_newest(by_subject)] if by_subject else []),
    ]
    expected = next(
        (Correlation(method, found[0]) for method, found in ladder if found),
        Correlation(M.NONE, None),
    )

    assert correlate(msg, candidates, chosen) == expected


@settings(max_examples=100)
@given(
    correlation_messages,
    correlation_settings,
    st.dictionaries(st.text(max_size=8), known_emails, max_size=3),
    st.dictionaries(st.text(max_size=8), st.lists(known_emails, max_size=2), max_size=3),
)
def test_correlate_never_raises(
    msg: ParsedMessage,
    chosen: CorrelationSettings,
    singles: dict[str, KnownEmail],
    groups: dict[str, list[KnownEmail]],
) -> None:
    result = correlate(msg, Candidates(singles, singles, groups, groups), chosen)

    assert (result.method == M.NONE) == (result.match is None)
