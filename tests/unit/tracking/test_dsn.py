"""Reading bounces: which message they report on, who failed and why (RFC 3464)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.tracking.dsn import RecipientStatus, parse_dsn, report_from_parsed
from crmsync.tracking.parse import parse_message

POSTFIX = b"""\
From: MAILER-DAEMON@mx.example (Mail Delivery System)
To: ann@acme.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example
Arrival-Date: Wed, 25 Nov 2026 09:00:00 +0000

Final-Recipient: rfc822; bob@fabrikam.example
Original-Recipient: rfc822;bob@fabrikam.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <bob@fabrikam.example>: Recipient address
    rejected: User unknown

Final-Recipient: rfc822; carol@fabrikam.example
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.fabrikam.example: Connection timed out

--B1
Content-Type: text/rfc822-headers

Message-ID: <crm.abc@acme.example>
From: Ann <ann@acme.example>
To: bob@fabrikam.example
Subject: Your quote CRM:0000042

--B1--
""".replace(b"\n", b"\r\n")

EXCHANGE = b"""\
From: postmaster@outlook.example
To: ann@acme.example
Subject: Undeliverable: Your quote CRM:0000042
Content-Type: multipart/report; report-type=delivery-status; boundary="E"

--E
Content-Type: text/plain

Delivery has failed to these recipients or groups.

--E
Content-Type: message/global-delivery-status

Reporting-MTA: dns;outlook.example

Final-Recipient: rfc822;bob@fabrikam.example
Action: failed
Status: 5.4.1
Diagnostic-Code: smtp;550 5.4.1 Recipient address rejected: Access denied

--E
Content-Type: message/rfc822

Message-ID: <crm.xyz@acme.example>
Subject: Your quote CRM:0000042
From: ann@acme.example

Hello Bob
--E--
""".replace(b"\n", b"\r\n")

EXIM = b"""\
From: Mail Delivery System <Mailer-Daemon@exim.example>
To: ann@acme.example
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: bob@fabrikam.example, dan@fabrikam.example
In-Reply-To: <crm.exim@acme.example>

This message was created automatically by mail delivery software.

------ This is a copy of the message, including all the headers. ------

Message-ID: <crm.exim@acme.example>
Subject: Your quote
""".replace(b"\n", b"\r\n")


def test_a_postfix_bounce_names_the_original_and_each_recipient() -> None:
    report = parse_dsn(POSTFIX)
    assert report is not None
    assert report.message_ids == ("<crm.abc@acme.example>",)
    assert report.original_subject == "Your quote CRM:0000042"
    assert report.reporting_mta == "mx.example"
    bob, carol = report.recipients
    assert bob == RecipientStatus(
        "bob@fabrikam.example",
        "failed",
        "5.1.1",
        "smtp; 550 5.1.1 <bob@fabrikam.example>: Recipient address rejected: User unknown",
    )
    assert (carol.action, carol.status, carol.failed) == ("delayed", "4.4.1", False)
    assert report.failures == (bob,)


def test_an_exchange_ndr_with_the_whole_message_returned() -> None:
    report = parse_dsn(EXCHANGE)
    assert report is not None
    assert report.message_ids == ("<crm.xyz@acme.example>",)
    (failure,) = report.failures
    assert (failure.recipient, failure.status) == ("bob@fabrikam.example", "5.4.1")


def test_an_exim_bounce_without_a_report_still_names_recipients_and_original() -> None:
    report = parse_dsn(EXIM)
    assert report is not None
    assert report.message_ids[0] == "<crm.exim@acme.example>"
    assert [r.recipient for r in report.failures] == [
        "bob@fabrikam.example",
        "dan@fabrikam.example",
    ]


def test_the_parsed_message_is_enough_when_the_original_is_attached() -> None:
    report = report_from_parsed(parse_message(EXCHANGE))
    assert report is not None
    assert report.message_ids == ("<crm.xyz@acme.example>",)
    assert [r.status for r in report.failures] == ["5.4.1"]
    # text/rfc822-headers is not kept by parse: without raw bytes, nothing names it.
    assert report_from_parsed(parse_message(POSTFIX)) is None


def test_a_status_in_the_diagnostic_serves_when_the_status_field_is_missing() -> None:
    raw = POSTFIX.replace(b"Status: 5.1.1\r\n", b"").replace(b"Action: failed\r\n", b"")
    report = parse_dsn(raw)
    assert report is not None
    first = report.recipients[0]
    assert (first.action, first.status, first.failed) == ("", "5.1.1", True)


def test_a_message_that_names_nothing_is_no_report() -> None:
    assert parse_dsn(b"Subject: hello\r\n\r\nhi") is None
    assert parse_dsn(b"") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_never_raise(raw: bytes) -> None:
    parse_dsn(raw)
    parse_dsn(POSTFIX[: len(raw)] + raw)


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, len(POSTFIX)))
def test_a_truncated_bounce_never_raises(cut: int) -> None:
    report = parse_dsn(POSTFIX[:cut])
    assert report is None or all(isinstance(r, RecipientStatus) for r in report.recipients)
