"""parse_message on byte literals: MIME structure, encodings, limits, defects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crmsync.tracking.htmltext import html_to_text
from crmsync.tracking.parse import (
    Address,
    MalformedMessage,
    MalformedReason,
    ParseLimits,
    extract_msgids,
    parse_message,
)
from tests.unit.tracking.messages import (
    ALTERNATIVE_WITH_ATTACHMENTS,
    DSN,
    HTML_ONLY,
    LATIN1_SUBJECT,
    UNKNOWN_CHARSET,
    many_parts,
    nested,
)


def test_multipart_alternative_with_attachments() -> None:
    msg = parse_message(ALTERNATIVE_WITH_ATTACHMENTS)

    assert msg.message_id == "<CAB123@mail.b.example>"
    assert msg.in_reply_to == "<first@crm.example>"
    assert msg.references == ("<first@crm.example>", "<second@crm.example>")
    assert msg.subject == "RE: Angebot über € 100"
    assert msg.thread_topic == "Angebot über € 100"
    assert msg.thread_index == "AQHYnHLVENTK1UHdsEyeUwZej/8cmg=="
    assert msg.date == datetime(2024, 3, 5, 8, 15, tzinfo=UTC)
    assert msg.from_ == (Address("Jörg Müller", "Joerg@B.example"),)
    assert msg.to == (Address("", "sales@a.example"), Address("Lee, Ann", "ann@a.example"))
    assert msg.cc == ()
    assert msg.return_path == "<ann@a.example>"
    assert msg.content_type == "multipart/mixed"
    assert not msg.is_report
    assert msg.text_body == "Grüße,\ndas Angebot."
    assert msg.html_body == "<html><body><p>Grüße,</p><p>das <b>Angebot</b>.</p></body></html>"
    assert msg.size == len(ALTERNATIVE_WITH_ATTACHMENTS)
    assert msg.defects == ()


def test_attachments_with_rfc2231_and_rfc2047_filenames() -> None:
    pdf, png = parse_message(ALTERNATIVE_WITH_ATTACHMENTS).attachments

    assert (pdf.filename, pdf.content_type, pdf.data) == (
        "€ Preisliste.pdf",
        "application/pdf",
        b"%PDF-1.4\n",
    )
    assert (pdf.size, pdf.content_id, pdf.inline) == (9, None, False)
    assert (png.filename, png.content_type) == ("café.png", "image/png")
    assert png.data == b"\x89PNG\r\n\x1a\n"
    assert (png.content_id, png.inline) == ("logo@b.example", True)


def test_rfc2047_in_iso_8859_1_and_8bit_body() -> None:
    msg = parse_message(LATIN1_SUBJECT)

    assert msg.subject == "Réf. réunion de mâç"
    assert msg.from_ == (Address("François", "francois@a.example"),)
    assert msg.text_body == "Déjà vu\n"
    assert msg.defects == ()


@pytest.mark.parametrize(
    ("raw_subject", "expected"),
    [
        (b"=?UTF-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between encoded words goes
        (b"Re: =?utf-8?q?caf=C3=A9?= au lait", "Re: café au lait"),
        (b"=?utf-8?q?long_?=\r\n =?utf-8?q?folded?=", "long folded"),
        (b"=?utf-8*en?q?with_language?=", "with language"),
        (b"plain \xc3\xa9t\xc3\xa9", "plain été"),  # raw UTF-8 (RFC 6532)
    ],
)
def test_subject_decoding(raw_subject: bytes, expected: str) -> None:
    msg = parse_message(b"Subject: " + raw_subject + b"\r\n\r\nbody")

    assert msg.subject == expected
    assert msg.defects == ()


def test_broken_encoded_word_is_a_defect_and_the_rest_still_decodes() -> None:
    msg = parse_message(b"Subject: =?utf-8?b?QUJDR?= =?utf-8?q?ok=C3=A9?=\r\n\r\nx")

    assert msg.subject == "=?utf-8?b?QUJDR?=oké"
    assert msg.defects == ("broken encoded word in subject",)


def test_unknown_charset_is_a_defect_not_an_exception() -> None:
    msg = parse_message(UNKNOWN_CHARSET)

    assert msg.text_body == "café \ufffd\n"
    assert msg.subject == "café"
    assert msg.defects == (
        "unknown charset 'x-unknown' in message",
        "unknown charset 'x-unknown' in subject",
    )


def test_bad_base64_is_a_defect() -> None:
    raw = (
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"UEsD*BBQ\r\n--b--\r\n"
    )

    msg = parse_message(raw)

    assert msg.text_body == "hi"
    assert len(msg.attachments) == 1
    assert "bad base64 in part 3" in msg.defects


def test_dsn_multipart_report() -> None:
    msg = parse_message(DSN)

    assert msg.is_report
    assert msg.report_type == "delivery-status"
    assert msg.content_type == "multipart/report"
    assert msg.auto_submitted == "auto-replied"
    assert msg.return_path == "<>"
    assert msg.text_body.startswith("I'm sorry")
    status, original = msg.attachments
    assert status.content_type == "message/delivery-status"
    assert b"Status: 5.1.1" in status.data
    assert original.content_type == "message/rfc822"
    assert b"Message-ID: <sent1@crm.example>" in original.data


def test_attached_message_body_is_not_the_body() -> None:
    raw = (
        b"Subject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n"
        b'Content-Disposition: attachment; filename="orig.eml"\r\n\r\n'
        b"Subject: inner\r\n\r\ninner body\r\n--b--\r\n"
    )

    msg = parse_message(raw)

    assert msg.text_body == ""
    (eml,) = msg.attachments
    assert (eml.filename, eml.content_type) == ("orig.eml", "message/rfc822")
    assert eml.data == b"Subject: inner\r\n\r\ninner body"


def test_html_only_renders_text() -> None:
    msg = parse_message(HTML_ONLY)

    assert msg.text_body == "Hello “world”\n\nFirst\nsecond\n\n- one\n- two"
    assert msg.html_body is not None
    assert "<script>" in msg.html_body  # raw; sanitizing happens where it is shown
    assert msg.list_id == "News <news.a.example>"


def test_html_to_text_keeps_body_after_unclosed_title() -> None:
    assert html_to_text("<title>x<body><p>kept &amp; shown</p>") == "kept & shown"


def test_dates() -> None:
    naive = parse_message(b"Date: Mon, 1 Jan 2024 10:00:00 -0000\r\n\r\n")
    offset = parse_message(b"Date: Mon, 1 Jan 2024 10:00:00 +0200\r\n\r\n")
    bad = parse_message(b"Date: yesterday\r\n\r\n")

    assert naive.date == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert offset.date == datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    assert bad.date is None
    assert bad.defects == ("unparseable Date",)


def test_automation_headers_are_kept_raw() -> None:
    msg = parse_message(
        b"Auto-Submitted: auto-generated\r\nPrecedence: Bulk\r\nX-Autorespond: yes\r\n"
        b"List-Unsubscribe: <mailto:u@x>\r\n\r\n"
    )

    assert msg.auto_submitted == "auto-generated"
    assert msg.precedence == "Bulk"
    assert msg.x_autoreply == "yes"
    assert msg.list_unsubscribe == "<mailto:u@x>"


def test_8bit_filename_and_addresses() -> None:
    raw = (
        b"From: J\xc3\xb6rg <j@x.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="Pr\xc3\xa9sentation.pdf"\r\n\r\n'
        b"data\r\n--b--\r\n"
    )

    msg = parse_message(raw)

    assert msg.from_ == (Address("Jörg", "j@x.example"),)
    assert msg.attachments[0].filename == "Présentation.pdf"


def test_truncated_message_is_parsed_with_defects() -> None:
    cut = ALTERNATIVE_WITH_ATTACHMENTS[: ALTERNATIVE_WITH_ATTACHMENTS.index(b"JVBERi0x") + 5]

    msg = parse_message(cut)

    assert msg.subject == "RE: Angebot über € 100"
    assert msg.text_body == "Grüße,\ndas Angebot."
    assert any("CloseBoundaryNotFoundDefect" in defect for defect in msg.defects)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\r\n\r\nbody only", b"garbage without any header\n\nmore", b"\x00\xff\xfe"],
)
def test_no_header_section(raw: bytes) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(raw)

    assert caught.value.reason == MalformedReason.NO_HEADER


def test_over_the_size_limit() -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(b"Subject: x\r\n\r\n" + b"x" * 100, ParseLimits(max_bytes=100))

    assert caught.value.reason == MalformedReason.TOO_LARGE
    assert isinstance(caught.value, ValueError)


def test_depth_limit() -> None:
    assert parse_message(nested(20)).text_body == "deep\n"
    for depth in (21, 200, 600):
        with pytest.raises(MalformedMessage) as caught:
            parse_message(nested(depth))
        assert caught.value.reason in (MalformedReason.TOO_DEEP, MalformedReason.TOO_MANY_PARTS)
    with pytest.raises(MalformedMessage) as caught:
        parse_message(nested(21))
    assert caught.value.reason == MalformedReason.TOO_DEEP


def test_part_limit() -> None:
    assert parse_message(many_parts(10), ParseLimits(max_parts=11)).text_body == "part"
    with pytest.raises(MalformedMessage) as caught:
        parse_message(many_parts(11), ParseLimits(max_parts=11))

    assert caught.value.reason == MalformedReason.TOO_MANY_PARTS


def test_header_limit() -> None:
    raw = b"Subject: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\nbody"

    with pytest.raises(MalformedMessage) as caught:
        parse_message(raw, ParseLimits(max_header_bytes=1000))

    assert caught.value.reason == MalformedReason.HEADER_TOO_LARGE


def test_repr_shows_no_content() -> None:
    text = repr(parse_message(ALTERNATIVE_WITH_ATTACHMENTS))

    assert "Angebot" not in text
    assert "Grüße" not in text
    assert "CAB123" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@x>", ("<a@x>",)),
        ("<a@x> <b@y>\r\n <c@z>", ("<a@x>", "<b@y>", "<c@z>")),
        ("<a@x>,<b@y>", ("<a@x>", "<b@y>")),
        ("a@x b@y", ("<a@x>", "<b@y>")),
        ("<a@x> (Ann's message of Monday)", ("<a@x>",)),
        ("Your message of Mon, 1 Jan", ()),
        ("<long@\r\n folded.example>", ("<long@folded.example>",)),
        ("", ()),
        ("<>", ()),
    ],
)
def test_extract_msgids(value: str, expected: tuple[str, ...]) -> None:
    assert extract_msgids(value) == expected
