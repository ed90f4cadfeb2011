"""Hypothesis strategies shared by the tracking tests: messages, addresses, known emails."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from crmsync.core.types import RecordType
from crmsync.tracking.correlate import KnownEmail
from crmsync.tracking.parse import Address, ParsedMessage

# Real Outlook/Exchange Thread-Index values (two classic, two modern).
THREAD_INDEXES = (
    "AQHYnHLVENTK1UHdsEyeUwZej/8cmg==",
    "AcSvcQAwHXz0fOQjRPG8+rJerlZAkQ==",
    "AcaGRtIDk32mHzBMTdqcqq5tQbqNEwAR8Mzg",
    "AQHaVbXxn3uZQDIUQEWAqG1gtcTZ8LD3Kj8AgAAEkIA=",
)

domains = st.sampled_from(["a.example", "B.example", "bücher.example", "x.test"])
local_parts = st.sampled_from(["ann", "Bob", "carol", "dave", "sales", "info"])
email_addresses = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
any_addresses = st.one_of(email_addresses, st.text(max_size=20))
addresses = st.builds(Address, name=st.text(max_size=12), address=any_addresses)
address_tuples = st.lists(addresses, max_size=4).map(tuple)

msgids = st.one_of(
    st.sampled_from(["<m1@x>", "<m2@x>", "<m3@y>", "<m4@y>"]),
    st.text(max_size=12),
)
subjects = st.one_of(
    st.sampled_from(["Quote", "RE: Quote", "Fwd: quote CRM:0001234", "Re: hi [crm:0000042]"]),
    st.text(max_size=40),
)
thread_indexes = st.one_of(st.none(), st.sampled_from(THREAD_INDEXES), st.text(max_size=40))
aware_datetimes = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
flags = st.one_of(st.none(), st.sampled_from(["no", "auto-replied", "bulk", "list", "yes"]))

# Only the fields each consumer reads vary: generating all of them makes tests slow.
correlation_messages = st.builds(
    ParsedMessage,
    in_reply_to=st.one_of(st.none(), msgids),
    references=st.lists(msgids, max_size=4).map(tuple),
    subject=subjects,
    from_=address_tuples,
    to=address_tuples,
    cc=address_tuples,
    thread_index=thread_indexes,
)
party_messages = st.builds(
    ParsedMessage, from_=address_tuples, to=address_tuples, cc=address_tuples, bcc=address_tuples
)
automation_messages = st.builds(
    ParsedMessage,
    subject=subjects,
    from_=address_tuples,
    auto_submitted=flags,
    precedence=flags,
    list_id=st.one_of(st.none(), st.text(max_size=10)),
    list_unsubscribe=st.one_of(st.none(), st.just("<mailto:u@x.example>")),
    x_autoreply=flags,
    return_path=st.one_of(st.none(), st.sampled_from(["<>", "<a@x.example>"])),
    is_report=st.booleans(),
    report_type=st.one_of(st.none(), st.just("delivery-status")),
)


known_emails = st.builds(
    KnownEmail,
    activity_id=st.uuids(),
    message_id=st.one_of(st.none(), msgids),
    regarding=st.one_of(st.none(), st.tuples(st.just(RecordType.CONTACT), st.uuids())),
    participants=st.frozensets(
        st.builds(lambda local, domain: f"{local.lower()}@{domain}", local_parts, domains),
        max_size=4,
    ),
    conversation_guid=st.one_of(st.none(), st.uuids().map(str)),
    tracking_token=st.none(),
    normalised_subject=st.text(max_size=10),
    occurred_at=aware_datetimes,
)
