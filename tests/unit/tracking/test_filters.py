"""Which email to track: automation signals, block lists, and the decision table."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.core.types import RecordType
from crmsync.tracking.filters import BlockList, TrackingScope, automation_reason, decide
from crmsync.tracking.parse import Address, ParsedMessage, parse_message
from tests.unit.tracking.messages import ALTERNATIVE_WITH_ATTACHMENTS, DSN, HTML_ONLY
from tests.unit.tracking.strategies import automation_messages

R = RecordType


def test_automation_of_real_messages() -> None:
    assert automation_reason(parse_message(DSN)) == "bounce"
    assert automation_reason(parse_message(HTML_ONLY)) == "mailing-list"
    assert automation_reason(parse_message(ALTERNATIVE_WITH_ATTACHMENTS)) is None


DAEMON = (Address("Mail Delivery Subsystem", "mailer-daemon@googlemail.com"),)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (ParsedMessage(is_report=True, report_type="delivery-status"), "bounce"),
        (ParsedMessage(from_=DAEMON, subject="Delivery Status Notification (Failure)"), "bounce"),
        (ParsedMessage(return_path="<>", subject="failure notice"), "bounce"),
        (ParsedMessage(from_=DAEMON, subject="Your mailbox is almost full"), None),
        (ParsedMessage(is_report=True, report_type="disposition-notification"), None),
        (ParsedMessage(auto_submitted="auto-replied"), "auto-reply"),
        (ParsedMessage(auto_submitted="Auto-Generated; owner-email=x"), "auto-submitted"),
        (ParsedMessage(auto_submitted="no"), None),
        (ParsedMessage(x_autoreply="yes"), "auto-reply"),
        (ParsedMessage(precedence="auto_reply"), "auto-reply"),
        (ParsedMessage(precedence="Bulk"), "mailing-list"),
        (ParsedMessage(precedence="junk"), "mailing-list"),
        (ParsedMessage(list_unsubscribe="<mailto:u@x>"), "mailing-list"),
        (ParsedMessage(list_id="<sales.x>"), "mailing-list"),
        (ParsedMessage(precedence="first-class"), None),
    ],
)
def test_automation_reason(msg: ParsedMessage, expected: str | None) -> None:
    assert automation_reason(msg) == expected


def test_block_list() -> None:
    blocked = BlockList(
        addresses=frozenset({"Spam@Example.org"}),
        domains=frozenset({"*.Marketing.example", "@bücher.example"}),
    )

    assert blocked.blocks("spam@example.org")
    assert blocked.blocks("<SPAM@example.ORG>")
    assert not blocked.blocks("ham@example.org")
    assert blocked.blocks("a@marketing.example")
    assert blocked.blocks("a@eu.mail.marketing.example")
    assert not blocked.blocks("a@notmarketing.example")
    assert blocked.blocks("a@xn--bcher-kva.example")
    assert not blocked.blocks("not an address")
    assert not BlockList().blocks("a@b.example")


NOBODY: frozenset[RecordType] = frozenset()
ALL, REPLIES, RECORDS, ENABLED, NONE = (
    "all",
    "replies_to_crm",
    "from_crm_records",
    "from_email_enabled",
    "none",
)


@pytest.mark.parametrize(
    ("scope", "correlated", "types", "automation", "blocked", "expected"),
    [
        (REPLIES, True, NOBODY, None, False, (True, "correlated to a tracked email")),
        (REPLIES, False, {R.CONTACT}, None, False, (False, "not a reply to CRM email")),
        (ALL, False, NOBODY, None, False, (True, "all email is tracked")),
        (RECORDS, False, {R.CONTACT}, None, False, (True, "sender is a contact")),
        (RECORDS, False, {R.LEAD, R.ACCOUNT}, None, False, (True, "sender is an account")),
        (
            RECORDS,
            False,
            {R.USER},
            None,
            False,
            (False, "sender is not a lead, contact or account"),
        ),
        (RECORDS, True, NOBODY, None, False, (True, "correlated to a tracked email")),
        (ENABLED, False, {R.QUEUE}, None, False, (True, "sender is a queue")),
        (ENABLED, False, {R.USER}, None, False, (True, "sender is a user")),
        (ENABLED, False, NOBODY, None, False, (False, "sender is not a CRM record")),
        (NONE, True, {R.CONTACT}, None, False, (False, "tracking disabled")),
        (ALL, True, {R.CONTACT}, "mailing-list", False, (False, "automated: mailing-list")),
        (ALL, True, {R.CONTACT}, "auto-reply", False, (False, "automated: auto-reply")),
        (ALL, True, {R.CONTACT}, None, True, (False, "sender blocked")),
        (ALL, True, {R.CONTACT}, "bounce", True, (False, "automated: bounce")),
        (NONE, False, NOBODY, "bounce", False, (False, "automated: bounce")),
    ],
)
def test_decide(
    scope: str,
    correlated: bool,
    types: set[RecordType],
    automation: str | None,
    blocked: bool,
    expected: tuple[bool, str],
) -> None:
    decision = decide(
        TrackingScope(scope),
        correlated=correlated,
        sender_types=frozenset(types),
        automation=automation,
        blocked=blocked,
    )

    assert (decision.track, decision.reason) == expected


@settings(max_examples=200)
@given(
    st.sampled_from(TrackingScope),
    st.booleans(),
    st.frozensets(st.sampled_from(RecordType)),
    st.one_of(
        st.none(), st.sampled_from(["bounce", "auto-reply", "auto-submitted", "mailing-list"])
    ),
    st.booleans(),
)
def test_automated_or_blocked_is_never_tracked(
    scope: TrackingScope,
    correlated: bool,
    types: frozenset[RecordType],
    automation: str | None,
    blocked: bool,
) -> None:
    decision = decide(
        scope, correlated=correlated, sender_types=types, automation=automation, blocked=blocked
    )

    if automation or blocked or scope == TrackingScope.NONE:
        assert not decision.track
    if automation == "bounce":
        assert decision.reason == "automated: bounce"
    if correlated and not (automation or blocked) and scope != TrackingScope.NONE:
        assert decision.track


@settings(max_examples=100)
@given(automation_messages)
def test_automation_reason_never_raises(msg: ParsedMessage) -> None:
    assert automation_reason(msg) in (
        None,
        "bounce",
        "auto-reply",
        "auto-submitted",
        "mailing-list",
    )
