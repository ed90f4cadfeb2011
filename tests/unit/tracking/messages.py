"""Real-shaped messages as byte literals, shared by the parse and filter tests."""

from __future__ import annotations

ALTERNATIVE_WITH_ATTACHMENTS = (
    b"Return-Path: <ann@a.example>\r\n"
    b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Joerg@B.example>\r\n"
    b'To: sales@a.example, "Lee, Ann" <ann@a.example>\r\n'
    b"Cc: undisclosed-recipients:;\r\n"
    b"Subject: =?utf-8?b?UkU6IEFuZ2Vib3Qgw7xiZXIg4oKsIDEwMA==?=\r\n"
    b"Date: Tue, 5 Mar 2024 09:15:00 +0100\r\n"
    b"Message-ID: <CAB123@mail.b.example>\r\n"
    b"In-Reply-To: <first@crm.example>\r\n"
    b"References: <first@crm.example>\r\n <second@crm.example>\r\n"
    b"Thread-Index: AQHYnHLVENTK1UHdsEyeUwZej/8cmg==\r\n"
    b"Thread-Topic: =?utf-8?q?Angebot_=C3=BCber_=E2=82=AC_100?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"This is a multi-part message in MIME format.\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe,\r\n"
    b"das Angebot.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<html><body><p>Gr\xc3\xbc\xc3\x9fe,</p><p>das <b>Angebot</b>.</p></body></html>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/pdf\r\n"
    b"Content-Disposition: attachment;\r\n"
    b" filename*0*=utf-8''%E2%82%AC%20Preis;\r\n"
    b" filename*1=liste.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer\r\n"
    b'Content-Type: image/png; name="=?utf-8?q?caf=C3=A9.png?="\r\n'
    b"Content-ID: <logo@b.example>\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"iVBORw0KGgo=\r\n"
    b"--outer--\r\n"
)

LATIN1_SUBJECT = (
    b"From: =?ISO-8859-1?Q?Fran=E7ois?= <francois@a.example>\r\n"
    b"To: ann@a.example\r\n"
    b"Subject: =?ISO-8859-1?Q?R=E9f=2E_r=E9union?= de =?iso-8859-1?b?beLn?=\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"D\xe9j\xe0 vu\r\n"
)

UNKNOWN_CHARSET = (
    b"From: ann@a.example\r\n"
    b"Subject: =?x-unknown?q?caf=C3=A9?=\r\n"
    b"Content-Type: text/plain; charset=x-unknown\r\n"
    b"\r\n"
    b"caf\xc3\xa9 \xff\r\n"
)

DSN = (
    b"Return-Path: <>\r\n"
    b"From: Mail Delivery System <MAILER-DAEMON@mx.a.example>\r\n"
    b"To: ann@a.example\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Auto-Submitted: auto-replied\r\n"
    b"Message-ID: <dsn1@mx.a.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/report; report-type=delivery-status;\r\n"
    b'\tboundary="dsn"\r\n'
    b"\r\n"
    b"--dsn\r\n"
    b"Content-Description: Notification\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"I'm sorry to have to inform you that your message could not be delivered.\r\n"
    b"--dsn\r\n"
    b"Content-Description: Delivery report\r\n"
    b"Content-Type: message/delivery-status\r\n"
    b"\r\n"
    b"Reporting-MTA: dns; mx.a.example\r\n"
    b"\r\n"
    b"Final-Recipient: rfc822; nobody@b.example\r\n"
    b"Action: failed\r\n"
    b"Status: 5.1.1\r\n"
    b"\r\n"
    b"--dsn\r\n"
    b"Content-Description: Undelivered Message\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: ann@a.example\r\n"
    b"To: nobody@b.example\r\n"
    b"Subject: Quote CRM:0001234\r\n"
    b"Message-ID: <sent1@crm.example>\r\n"
    b"\r\n"
    b"Hello\r\n"
    b"--dsn--\r\n"
)

HTML_ONLY = (
    b"From: news@a.example\r\n"
    b"Subject: Only HTML\r\n"
    b"List-Id: News <news.a.example>\r\n"
    b"Content-Type: text/html; charset=windows-1252\r\n"
    b"\r\n"
    b"<html><head><title>T</title><style>p{color:red}</style></head>"
    b"<body><h1>Hello&nbsp;\x93world\x94</h1><p>First<br>second</p>"
    b"<ul><li>one</li><li>two</li></ul><script>alert(1)</script></body></html>\r\n"
)

SAMPLES = (ALTERNATIVE_WITH_ATTACHMENTS, LATIN1_SUBJECT, UNKNOWN_CHARSET, DSN, HTML_ONLY)


def nested(depth: int) -> bytes:
    """A message whose text part sits ``depth`` multiparts down."""
    body = b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
            b"--" + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n"
        )
    return b"Subject: nested\r\n" + body


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--z\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(count))
    return (
        b"Subject: many\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n" + parts + b"--z--\r\n"
    )
