"""The email page and its actions, as a browser sees them (TestClient, SQLite).

The emails here are tracked the way a person tracks one by hand: a mailbox's ledger row
with the raw bytes kept, through crmsync.sync.manual_track — the engine's pipeline
(correlation, party resolution, attachments, sanitized description).
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.core.types import EmailStatus, Participation
from crmsync.crm import activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.auth import hash_password
from crmsync.crm.models import Account, Contact, Email, Mailbox, MailboxMessage, User
from crmsync.sync import manual_track
from crmsync.web.pages.emails import WRITTEN_IN_CRM
from tests.conftest import Org
from tests.unit.web.conftest import log_in

QUOTE_ID = "<quote-1@acme.test>"
# The smallest PNG there is: one transparent pixel.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
HTMX = {"HX-Request": "true"}


def raw_message(
    *,
    message_id: str,
    subject: str = "Re: Your quote",
    html: str = '<p>Hello <b>Alice</b>,</p><p>see the logo <img src="cid:logo@fabrikam.test" '
    'alt="logo"></p><script>document.title="pwned"</script>'
    '<img src="https://remote.example/x.png" alt="remote">',
    in_reply_to: str | None = QUOTE_ID,
    with_attachments: bool = True,
) -> bytes:
    """A reply from Nancy (with Olga in copy), its HTML with an inline logo, a remote
    image and a script, and (``with_attachments``) an HTML file attached."""
    pixel = base64.b64encode(PIXEL).decode()
    headers = (
        "From: Nancy Buyer <nancy@fabrikam.test>\r\n"
        "To: Administrator <admin@acme.test>\r\n"
        "Cc: Olga Other <olga@unknown.test>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Tue, 03 Mar 2026 10:15:00 +0000\r\n"
        f"Message-ID: {message_id}\r\n"
        + (f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else "")
        + "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n'
    )
    related = (
        "--mix\r\n"
        'Content-Type: multipart/related; boundary="rel"\r\n\r\n'
        "--rel\r\n"
        'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hello Alice, see the logo.\r\n"
        "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"{html}\r\n"
        "--alt--\r\n"
        "--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@fabrikam.test>\r\n"
        "Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{pixel}\r\n"
        "--rel--\r\n"
    )
    attached = (
        "--mix\r\nContent-Type: text/html; charset=utf-8\r\n"
        'Content-Disposition: attachment; filename="offer.html"\r\n\r\n'
        "<script>alert(1)</script><p>offer</p>\r\n"
        if with_attachments
        else ""
    )
    return (headers + related + attached + "--mix--\r\n").encode()


@dataclass(frozen=True)
class Tracked:
    email_id: uuid.UUID
    quote_id: uuid.UUID  # the CRM email it answers
    ledger_id: uuid.UUID


def quote_email(org: Org, message_id: str = QUOTE_ID, subject: str = "Your quote") -> uuid.UUID:
    """An email sent from the CRM to Nancy, which the tracked reply answers."""
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        email = activities.create_activity(
            session,
            admin,
            Email,
            {"subject": subject, "status": EmailStatus.SENT},
            [PartySpec(Participation.TO, address="nancy@fabrikam.test")],
        )
        email.message_id = message_id
        return email.id


def seen_message(org: Org, raw: bytes, message_id: str, *, uid: int = 1) -> uuid.UUID:
    """The admin's mailbox saw ``raw`` and kept its bytes, without tracking it."""
    with org.store.transaction() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == org.admin_id)).one()
        sha = org.store.blobs.put(session, raw)
        row = MailboxMessage(
            mailbox_id=mailbox.id,
            folder="INBOX",
            uidvalidity=1,
            uid=uid,
            message_id=message_id,
            raw_sha256=sha,
            tracked=False,
            reason="not tracked: the owner tracks replies to CRM email only",
        )
        session.add(row)
        session.flush()
        return row.id


def track(org: Org, ledger_id: uuid.UUID) -> uuid.UUID:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        return manual_track.track_message(
            session, org.store.blobs, admin, ledger_id=ledger_id
        ).email.id


def tracked_reply(org: Org, tag: str = "1", **options: object) -> Tracked:
    """A CRM quote and Nancy's tracked reply to it: its id, the quote's, its ledger row."""
    quote_id = quote_email(org, f"<quote-{tag}@acme.test>", f"Your quote {tag}")
    message_id = f"<reply-{tag}@fabrikam.test>"
    raw = raw_message(message_id=message_id, in_reply_to=f"<quote-{tag}@acme.test>", **options)  # type: ignore[arg-type]
    ledger_id = seen_message(org, raw, message_id, uid=int(uuid.uuid4().int % 1_000_000))
    return Tracked(track(org, ledger_id), quote_id, ledger_id)


def add_login(org: Org, username: str, *, far: bool = False) -> None:
    """A salesperson who can log in (password ``<username>-password``); ``far`` puts them
    in another business unit, where they cannot read the admin's email."""
    with org.store.transaction() as session:
        unit = org.add_unit(session, f"{username} unit") if far else None
        user = session.get(User, org.add_user(session, username, unit_id=unit))
        assert user is not None
        user.password_hash = hash_password(f"{username}-password")


def _url(email_id: uuid.UUID, tail: str = "") -> str:
    return f"/emails/{email_id}{tail}"


def _email(org: Org, email_id: uuid.UUID) -> Email | None:
    with org.store.transaction() as session:
        email = session.get(Email, email_id)
        if email is not None:
            session.expunge(email)
        return email


@pytest.fixture
def reply(web_org: Org) -> Tracked:
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        records.create_record(
            session,
            admin,
            Contact,
            {"first_name": "Nancy", "last_name": "Buyer", "email1": "nancy@fabrikam.test"},
        )
    return tracked_reply(web_org)


# -- the page ----------------------------------------------------------------------------


def test_the_page_shows_who_what_and_why(browser: TestClient, web_org: Org, reply: Tracked) -> None:
    log_in(browser)
    page = browser.get(_url(reply.email_id))
    assert page.status_code == 200, page.text
    text = page.text
    assert "<h1>Re: Your quote</h1>" in text
    # Nancy is a contact: her name links to her record; Olga is nobody yet.
    assert re.search(r'<a class="party-name" href="/contacts/[0-9a-f-]{36}">Nancy Buyer</a>', text)
    assert "olga@unknown.test" in text
    assert "Add as contact" in text
    assert "Add as lead" in text
    # The body is its own sandboxed document, never part of the page.
    assert (
        'sandbox="allow-popups allow-popups-to-escape-sandbox" title="Message body" '
        'referrerpolicy="no-referrer"'
    ) in text
    assert f'src="/emails/{reply.email_id}/body"' in text
    assert "pwned" not in text
    assert "Remote images are blocked" in text
    assert "Hello Alice, see the logo." in text  # the text body
    # Why it was tracked: the reply's header matched the CRM's quote, linked.
    assert "In reply to" in text
    assert f'Matched <a href="/emails/{reply.quote_id}">Your quote 1</a>' in text
    assert "tracked by Administrator" in text
    # The attachment and the conversation.
    assert "offer.html" in text
    assert f'href="/emails/{reply.email_id}/attachments/' in text
    assert f'<a href="/emails/{reply.quote_id}">Your quote 1</a>' in text


def test_why_links_what_the_reply_matched_and_copes_without_a_recorded_reason(
    browser: TestClient, web_org: Org
) -> None:
    quote_id = quote_email(web_org, "<quote-9@acme.test>", "Your quote 9")
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        account = records.create_record(session, admin, Account, {"name": "Fabrikam"})
        quote = session.get(Email, quote_id)
        assert quote is not None
        quote.regarding_type, quote.regarding_id = account.record_type, account.id
        account_id = account.id
    raw = raw_message(message_id="<reply-9@fabrikam.test>", in_reply_to="<quote-9@acme.test>")
    reply_id = track(web_org, seen_message(web_org, raw, "<reply-9@fabrikam.test>", uid=9))
    log_in(browser)
    text = browser.get(_url(reply_id)).text
    assert "tracked by Administrator; correlated by in reply to" in text
    assert f'Matched <a href="/emails/{quote_id}">Your quote 9</a>' in text
    assert f'<a href="/accounts/{account_id}">Fabrikam</a>' in text
    assert "<code>&lt;quote-9@acme.test&gt;</code>" in text
    # Tracked before reasons were kept: what its columns and its mailbox say.
    with web_org.store.transaction() as session:
        email = session.get(Email, reply_id)
        assert email is not None
        email.why = None
    older = browser.get(_url(reply_id))
    assert older.status_code == 200
    assert "Its mailbox said" in older.text
    assert f'Matched <a href="/emails/{quote_id}">Your quote 9</a>' in older.text


def test_the_quote_lists_its_reply_in_the_conversation(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    log_in(browser)
    page = browser.get(_url(reply.quote_id))
    assert page.status_code == 200
    assert f'<a href="/emails/{reply.email_id}">Re: Your quote</a>' in page.text
    assert "None: this email was written in the CRM." in page.text


def test_an_email_one_cannot_read_is_not_there(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    add_login(web_org, "far-away", far=True)
    token = log_in(browser, "far-away", "far-away-password")
    with web_org.store.transaction() as session:
        email = session.get(Email, reply.email_id)
        assert email is not None
        attachment_id = email.attachments[0].id
    for path in (
        _url(reply.email_id),
        _url(reply.email_id, "/body"),
        _url(reply.email_id, f"/attachments/{attachment_id}"),
        _url(reply.email_id, "/regarding/options?find=a"),
        "/emails/not-an-id",
        _url(uuid.uuid4()),
    ):
        answer = browser.get(path, headers=HTMX if "options" in path else {})
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "There is no such page" in answer.text
        assert "offer.html" not in answer.text
    refused = browser.post(
        _url(reply.email_id, "/untrack"), data={"csrf_token": token}, headers=HTMX
    )
    assert refused.status_code == 404
    assert _email(web_org, reply.email_id) is not None


def test_the_body_is_a_sandboxed_document_without_scripts_or_remote_images(
    browser: TestClient, reply: Tracked
) -> None:
    log_in(browser)
    body = browser.get(_url(reply.email_id, "/body"))
    assert body.status_code == 200
    policy = body.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'none'" in policy
    assert re.search(r"img-src data:;", policy)
    # No allow-scripts, allow-same-origin or allow-forms: links may open a tab, no more.
    assert policy.endswith("; sandbox allow-popups allow-popups-to-escape-sandbox")
    assert '<base target="_blank">' in body.text
    assert body.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in body.text
    assert "pwned" not in body.text
    assert "remote.example" not in body.text  # not even a URL the browser could try
    assert "<b>Alice</b>" in body.text
    # The inline logo comes from the email's own attachment, in the document itself.
    logo = base64.b64encode(PIXEL).decode()
    assert f'src="data:image/png;base64,{logo}"' in body.text

    remote = browser.get(_url(reply.email_id, "/body?images=remote"))
    assert "img-src data: https:;" in remote.headers["content-security-policy"]
    assert 'src="https://remote.example/x.png"' in remote.text
    assert "<script" not in remote.text


def test_attachments_download_and_html_never_renders(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    log_in(browser)
    with web_org.store.transaction() as session:
        email = session.get(Email, reply.email_id)
        assert email is not None
        by_type = {item.content_type: item.id for item in email.attachments}
    html = browser.get(_url(reply.email_id, f"/attachments/{by_type['text/html']}"))
    assert html.status_code == 200
    assert html.headers["content-disposition"].startswith("attachment;")
    assert 'filename="offer.html"' in html.headers["content-disposition"]
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in html.headers["content-security-policy"]
    assert html.content.startswith(b"<script>alert(1)</script>")
    image = browser.get(_url(reply.email_id, f"/attachments/{by_type['image/png']}"))
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline;")
    assert image.content == PIXEL
    other = browser.get(_url(reply.email_id, f"/attachments/{uuid.uuid4()}"))
    assert other.status_code == 404


# -- actions -----------------------------------------------------------------------------


def test_regarding_is_found_as_one_types_set_and_cleared(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    with web_org.store.transaction() as session:
        admin = web_org.principal(session, web_org.admin_id)
        account = records.create_record(session, admin, Account, {"name": "Fabrikam Ltd"})
    token = log_in(browser)
    found = browser.get(_url(reply.email_id, "/regarding/options?find=brikam"), headers=HTMX)
    assert found.status_code == 200
    choice = f"account:{account.id}"
    assert f'name="record" value="{choice}"' in found.text
    assert "Fabrikam Ltd" in found.text

    chosen = browser.post(
        _url(reply.email_id, "/regarding"),
        data={"csrf_token": token, "record": choice},
        headers=HTMX,
    )
    assert chosen.status_code == 200, chosen.text
    assert f'<a href="/accounts/{account.id}">Fabrikam Ltd</a>' in chosen.text
    assert "Regarding set" in chosen.text
    email = _email(web_org, reply.email_id)
    assert email is not None
    assert (email.regarding_id, email.correlation_method.value) == (account.id, "manual")
    assert (
        f'<a href="/accounts/{account.id}">Fabrikam Ltd</a>'
        in browser.get(_url(reply.email_id)).text
    )

    cleared = browser.post(
        _url(reply.email_id, "/regarding"), data={"csrf_token": token, "clear": "1"}
    )
    assert cleared.status_code == 303  # a plain form goes back to the page
    assert cleared.headers["location"] == _url(reply.email_id)
    email = _email(web_org, reply.email_id)
    assert email is not None
    assert email.regarding_id is None
    assert "Regarding cleared" in browser.get(_url(reply.email_id)).text


def test_an_unknown_address_becomes_a_contact(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    token = log_in(browser)
    added = browser.post(
        _url(reply.email_id, "/resolve"),
        data={
            "csrf_token": token,
            "address": "olga@unknown.test",
            "display_name": "Olga Other",
            "as": "contact",
        },
        headers=HTMX,
    )
    assert added.status_code == 200, added.text
    with web_org.store.transaction() as session:
        olga = session.scalars(select(Contact).where(Contact.email1 == "olga@unknown.test")).one()
        assert (olga.first_name, olga.last_name) == ("Olga", "Other")
    assert f'<a class="party-name" href="/contacts/{olga.id}">Olga Other</a>' in added.text
    assert "olga@unknown.test is now a contact" in added.text
    assert "Add as contact" not in added.text  # nobody is left unresolved


def test_untracking_says_so_and_offers_to_track_again(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    token = log_in(browser)
    gone = browser.post(_url(reply.email_id, "/untrack"), data={"csrf_token": token}, headers=HTMX)
    assert gone.status_code == 200, gone.text
    assert "Email untracked" in gone.text
    assert "“Re: Your quote” is no longer in the CRM" in gone.text
    assert f'name="ledger_id" value="{reply.ledger_id}"' in gone.text
    assert _email(web_org, reply.email_id) is None
    assert browser.get(_url(reply.email_id)).status_code == 404

    again = browser.post(
        "/emails/track", data={"csrf_token": token, "ledger_id": str(reply.ledger_id)}, headers=HTMX
    )
    assert again.status_code == 204
    new_url = again.headers["hx-redirect"]
    assert re.fullmatch(r"/emails/[0-9a-f-]{36}", new_url)
    page = browser.get(new_url)
    assert page.status_code == 200
    assert "Email tracked" in page.text
    assert "<h1>Re: Your quote</h1>" in page.text


def test_a_reply_is_queued_for_the_outgoing_engine(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    token = log_in(browser)
    page = browser.get(_url(reply.email_id)).text
    assert 'name="to" value="nancy@fabrikam.test"' in page
    assert 'name="subject" value="Re: Your quote"' in page
    sent = browser.post(
        _url(reply.email_id, "/reply"),
        data={
            "csrf_token": token,
            "to": "nancy@fabrikam.test",
            "subject": "Re: Your quote",
            "text": "Thank you, Nancy.",
        },
        headers=HTMX,
    )
    assert sent.status_code == 204, sent.text
    new_id = uuid.UUID(sent.headers["hx-redirect"].rpartition("/")[2])
    with web_org.store.transaction() as session:
        queued = session.get(Email, new_id)
        assert queued is not None
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == web_org.admin_id)).one()
        assert queued.status is EmailStatus.PENDING_SEND
        assert queued.send_mailbox_id == mailbox.id
        assert queued.reply_to_email_id == reply.email_id
        assert queued.body_text == "Thank you, Nancy."
        assert [(p.participation, p.address) for p in queued.parties] == [
            (Participation.FROM, mailbox.email_address),
            (Participation.TO, "nancy@fabrikam.test"),
        ]
    shown = browser.get(f"/emails/{new_id}").text
    assert '<span class="status-pill status-pending_send">Queued</span>' in shown
    assert "Reply queued" in shown
    assert "Waiting: the mailbox is pending, not approved" in shown
    assert WRITTEN_IN_CRM in shown
    assert '<span class="chip chip-method">Written in the CRM</span>' in shown
    # Before the engine gives it headers, the reply is already part of the conversation.
    assert f'<a href="/emails/{reply.email_id}">Re: Your quote</a>' in shown
    assert (
        f'<a href="/emails/{new_id}">Re: Your quote</a>' in browser.get(_url(reply.email_id)).text
    )


def test_a_reply_that_cannot_go_says_why_and_leaves_no_draft(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    token = log_in(browser)
    with web_org.store.transaction() as session:
        before = len(list(session.scalars(select(Email.id))))
    refused = browser.post(
        _url(reply.email_id, "/reply"),
        data={"csrf_token": token, "to": "not an address", "subject": "Re:", "text": "x"},
        headers=HTMX,
    )
    assert refused.status_code == 200
    assert "Write one or more email addresses" in refused.text
    assert 'value="not an address"' in refused.text  # what was written stays
    with web_org.store.transaction() as session:
        assert len(list(session.scalars(select(Email.id)))) == before


def test_a_bounced_email_says_so(browser: TestClient, web_org: Org, reply: Tracked) -> None:
    with web_org.store.transaction() as session:
        quote = session.get(Email, reply.quote_id)
        assert quote is not None
        quote.bounced_at = quote.occurred_at
        quote.bounce_recipient = "nancy@fabrikam.test"
        quote.bounce_status = "5.1.1"
        quote.bounce_reason = "mailbox unavailable"
    log_in(browser)
    page = browser.get(_url(reply.quote_id)).text
    assert '<span class="status-pill status-bounced">Bounced</span>' in page
    assert "for nancy@fabrikam.test (5.1.1): mailbox unavailable" in page


def test_actions_without_the_csrf_token_or_from_elsewhere_are_refused(
    browser: TestClient, web_org: Org, reply: Tracked
) -> None:
    token = log_in(browser)
    for data, headers in (
        ({}, HTMX),
        ({"csrf_token": "forged"}, {}),
        ({"csrf_token": token}, {"Origin": "http://evil.example"}),
    ):
        refused = browser.post(_url(reply.email_id, "/untrack"), data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
        assert "did not come from a page of this site" in refused.text
    assert _email(web_org, reply.email_id) is not None
    assert browser.get(_url(reply.email_id)).status_code == 200
