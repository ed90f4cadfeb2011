"""Composing outgoing mail: headers, threading, token, bodies, files — read back by parse."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime, timedelta
from email.policy import default

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.tracking.compose import (
    MAX_REFERENCES,
    ComposeError,
    Draft,
    OutgoingAttachment,
    Parent,
    compose,
    outgoing_subject,
    reply_references,
)
from crmsync.tracking.headers import Address
from crmsync.tracking.parse import parse_message
from crmsync.tracking.threadindex import conversation_guid, new_thread_index
from crmsync.tracking.token import TokenFormat, find_token

WHEN = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
ANN = Address("Ann Lee", "ann@acme.example")
BOB = Address("Bob Buyer", "bob@fabrikam.example")


def draft(**changes: object) -> Draft:
    values: dict[str, object] = {
        "sender": ANN,
        "to": (BOB,),
        "subject": "Your quote",
        "text": "Hello Bob",
        "message_id": "<crm.1@acme.example>",
        "date": WHEN,
        "token": "CRM:0000042",
    }
    values.update(changes)
    return Draft(**values)  # type: ignore[arg-type]


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_a_plain_message_has_every_header_and_one_text_part() -> None:
    composed = compose(draft())
    parsed = parse_message(composed.raw)
    assert parsed.message_id == "<crm.1@acme.example>"
    assert parsed.subject == "Your quote CRM:0000042" == composed.subject
    assert parsed.from_ == (ANN,)
    assert parsed.to == (BOB,)
    assert parsed.content_type == "text/plain"
    assert parsed.text_body == "Hello Bob\n"
    assert parsed.date == WHEN
    assert parsed.in_reply_to is None
    assert parsed.references == ()
    assert composed.envelope_from == "ann@acme.example"
    assert composed.recipients == ("bob@fabrikam.example",)
    assert not composed.smtputf8
    assert b"\r\n" in composed.raw
    assert b"\n" not in composed.raw.replace(b"\r\n", b"")
    assert composed.raw.isascii()


def test_bcc_is_in_the_envelope_only_and_recipients_are_not_repeated() -> None:
    carol = Address("Carol", "carol@partner.example")
    composed = compose(
        draft(cc=(Address("", "BOB@Fabrikam.example"),), bcc=(carol, Address("", "ann@x.example")))
    )
    assert composed.recipients == ("bob@fabrikam.example", "carol@partner.example", "ann@x.example")
    assert b"carol" not in composed.raw.lower()
    assert b"bcc" not in header_block(composed.raw).lower()
    assert parse_message(composed.raw).bcc == ()


def test_line_breaks_in_names_subjects_and_file_names_cannot_add_headers() -> None:
    composed = compose(
        draft(
            to=(Address("Bob\r\nBcc: evil@x.example", "bob@fabrikam.example"),),
            subject="Quote\r\nX-Injected: yes",
            attachments=(OutgoingAttachment("a\r\nX-Evil: 1.pdf", "application/pdf", b"%PDF"),),
        )
    )
    message = email.message_from_bytes(composed.raw, policy=default)
    assert message["X-Injected"] is None
    assert message["Bcc"] is None
    assert "X-Evil" not in [k for part in message.walk() for k in part]
    assert composed.recipients == ("bob@fabrikam.example",)


def test_html_is_sanitized_and_offered_beside_text() -> None:
    composed = compose(
        draft(
            text="",
            html='<p onclick="x()">Hi <b>Bob</b></p><script>steal()</script><img src="cid:logo">',
        )
    )
    parsed = parse_message(composed.raw)
    assert parsed.content_type == "multipart/alternative"
    assert parsed.html_body is not None
    assert "<b>Bob</b>" in parsed.html_body
    assert "script" not in parsed.html_body
    assert "onclick" not in parsed.html_body
    assert parsed.text_body.strip() == "Hi Bob"  # made from the HTML when no text is given


def test_attachments_keep_name_type_bytes_and_content_id() -> None:
    data = bytes(range(256)) * 10
    composed = compose(
        draft(
            html="<p>See <img src='cid:logo@acme'></p>",
            attachments=(
                OutgoingAttachment("Angebot für Bob.pdf", "application/pdf", data),
                OutgoingAttachment("logo.png", "image/png", b"\x89PNG", "logo@acme", inline=True),
                OutgoingAttachment("", "not a type", b"x"),
            ),
        )
    )
    parsed = parse_message(composed.raw)
    assert parsed.content_type == "multipart/mixed"
    files = {a.filename: a for a in parsed.attachments}
    assert files["Angebot für Bob.pdf"].data == data
    assert files["Angebot für Bob.pdf"].content_type == "application/pdf"
    assert files["logo.png"].content_id == "logo@acme"
    assert files["logo.png"].inline
    assert files["attachment-3"].content_type == "application/octet-stream"


def test_a_reply_threads_under_its_parent() -> None:
    guid = uuid.uuid4()
    parent_index = new_thread_index(WHEN - timedelta(hours=1), guid)
    parent = Parent(
        "<p2@fabrikam.example>",
        references=("<p0@acme.example>", "<p1@fabrikam.example>"),
        thread_index=parent_index,
    )
    composed = compose(draft(parent=parent, subject="RE: Your quote CRM:0000007"))
    parsed = parse_message(composed.raw)
    assert parsed.in_reply_to == "<p2@fabrikam.example>"
    assert parsed.references == (
        "<p0@acme.example>",
        "<p1@fabrikam.example>",
        "<p2@fabrikam.example>",
    )
    assert conversation_guid(parsed.thread_index) == str(guid) == composed.conversation_guid
    assert parsed.thread_index is not None
    assert len(parsed.thread_index) > len(parent_index)
    # The parent's token gives way to this email's own.
    assert parsed.subject == "RE: Your quote CRM:0000042"


def test_a_new_conversation_gets_a_stable_thread_index() -> None:
    first, retry = compose(draft()), compose(draft(date=WHEN + timedelta(minutes=5)))
    assert conversation_guid(first.thread_index) == conversation_guid(retry.thread_index)
    again = compose(draft(thread_index=first.thread_index, date=WHEN + timedelta(hours=1)))
    assert again.thread_index == first.thread_index


def test_references_are_capped_keeping_the_first_and_the_latest() -> None:
    many = tuple(f"<r{n}@x.example>" for n in range(40))
    refs = reply_references(Parent("<last@x.example>", references=many))
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == "<r0@x.example>"
    assert refs[-2:] == ("<r39@x.example>", "<last@x.example>")
    assert reply_references(Parent("<b@x>", in_reply_to="<a@x>")) == ("<a@x>", "<b@x>")
    assert reply_references(Parent("<b@x>", references=("junk", "<a@x>"))) == ("<a@x>", "<b@x>")


def test_international_addresses_ask_for_smtputf8() -> None:
    composed = compose(draft(to=(Address("Jörg", "jörg@bücher.example"),)))
    assert composed.smtputf8
    assert parse_message(composed.raw).to[0].address == "jörg@bücher.example"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"to": ()}, "recipient"),
        ({"to": (Address("", "not an address"),)}, "to.0"),
        ({"message_id": "no-brackets@x"}, "message_id"),
        ({"date": datetime(2026, 1, 1)}, "timezone"),
        ({"sender": Address("", "nobody")}, "sender"),
    ],
)
def test_what_cannot_be_a_message_is_refused_by_field(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(ComposeError, match=reason):
        compose(draft(**changes))


def test_without_a_token_the_subject_is_only_made_one_line() -> None:
    assert outgoing_subject("  Quote\n\tfor  May ", None) == "Quote for May"
    assert outgoing_subject("Quote CRM:0000001", "CRM:0000002") == "Quote CRM:0000002"
    fmt = TokenFormat("T#", 4)
    assert outgoing_subject("[T#0001] Quote", "T#0002", fmt) == "Quote T#0002"


@settings(max_examples=200, deadline=None)
@given(subject=st.text(max_size=400), number=st.integers(0, 9_999_999))
def test_the_token_always_fits_and_is_found(subject: str, number: int) -> None:
    token = f"CRM:{number:07d}"
    composed = compose(draft(subject=subject, token=token))
    assert len(composed.subject) <= 255
    assert find_token(composed.subject) == token
    assert parse_message(composed.raw).subject == composed.subject


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(max_size=40),
    text=st.text(max_size=300),
    html=st.one_of(st.none(), st.text(max_size=300)),
)
def test_any_names_and_bodies_make_a_parseable_message(
    name: str, text: str, html: str | None
) -> None:
    composed = compose(draft(to=(Address(name, "bob@fabrikam.example"),), text=text, html=html))
    parsed = parse_message(composed.raw)
    assert parsed.message_id == "<crm.1@acme.example>"
    assert [a.address for a in parsed.to] == ["bob@fabrikam.example"]
    assert parsed.defects == ()
