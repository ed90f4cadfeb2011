"""Outgoing email by hand: ``crmsync send once`` and the Sent-copy setting of a profile.

    crmsync send once [--mailbox M ...] [--limit N]   one pass per mailbox with queued
                                                      email, a progress bar per email
    crmsync send sent-copies PROFILE on|off           append copies to Sent, or not

Exit codes as every command: 0 done, 1 a mailbox failed (the table says why). This module
only chooses mailboxes and reports: sending, retrying and the never-twice rule are
``sync/outgoing``'s.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.cli.common import (
    AsUser,
    acting_principal,
    app,
    fail,
    find_mailboxes,
    find_one,
    open_store,
    out,
    progress,
    secret_box,
    settings,
)
from crmsync.core.types import Privilege
from crmsync.crm import access, profiles
from crmsync.crm.access import Principal
from crmsync.crm.errors import CrmError
from crmsync.crm.models.mail import EmailServerProfile, Mailbox
from crmsync.logs import logging_configured
from crmsync.sync.outgoing import OutgoingOptions, OutgoingReport, pending_by_mailbox, sync_outgoing
from crmsync.sync.outgoing.decide import Verdict

send_app = typer.Typer(no_args_is_help=True, help="Outgoing email: send queued CRM email.")
app.add_typer(send_app, name="send")


def _chosen(session: Session, principal: Principal, selectors: list[str] | None) -> list[Mailbox]:
    """The named mailboxes (id, address or name), else every one with queued email; each
    must let the principal write (send as it)."""
    if selectors:
        return find_mailboxes(session, principal, selectors, Privilege.WRITE)
    query = select(Mailbox).where(
        access.visible(Mailbox, principal), Mailbox.id.in_(list(pending_by_mailbox(session)))
    )
    chosen = list(session.scalars(query.order_by(Mailbox.name)))
    for mailbox in chosen:
        access.require(session, principal, mailbox, Privilege.WRITE)
    return chosen


def _row(name: str, report: OutgoingReport) -> list[str]:
    if not report.ran:
        result = "waiting" if report.held else "skipped"
    else:
        result = "[red]failed[/]" if report.error else "[green]ok[/]"
    detail = str(report.error or report.why_not or report.copy_error or "")
    return [
        name,
        result,
        str(report.sent),
        str(report.retrying),
        str(report.failed),
        f"{report.recovered}/{report.uncertain}",
        str(report.copies),
        detail,
    ]


@send_app.command("once")
def send_once(
    mailbox: Annotated[
        list[str] | None, typer.Option(help="Only these mailboxes (id, address, name).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Emails per mailbox.")] = 500,
    as_user: AsUser = None,
) -> None:
    """Send what is queued, one pass per mailbox, with a progress bar per email."""
    config = settings()
    store = open_store(config)
    box = secret_box(config)
    principal = acting_principal(store, as_user)
    try:
        with store.transaction() as session:
            chosen = [(m.id, m.name) for m in _chosen(session, principal, mailbox)]
            waiting = pending_by_mailbox(session)
    except CrmError as exc:
        fail(exc.detail)
    table = Table(
        "mailbox", "result", "sent", "retrying", "failed", "found/uncertain", "copies", "detail"
    )
    failed = 0
    # The engine's own lines (one per email and per pass) above the bar, on stderr.
    with logging_configured(config), progress() as bar:
        total = sum(min(limit, waiting.get(mailbox_id, 0)) for mailbox_id, _ in chosen)
        task = bar.add_task("Outgoing email", total=total)

        def advance(_email_id: uuid.UUID, _verdict: Verdict) -> None:
            bar.advance(task)

        options = OutgoingOptions(max_emails=limit, on_email=advance)
        for mailbox_id, name in chosen:
            bar.update(task, description=f"Outgoing email: {name}")
            report = sync_outgoing(store, box, mailbox_id, options)
            failed += report.error is not None
            table.add_row(*_row(name, report))
    out.print(table)
    if failed:
        raise typer.Exit(1)


@send_app.command("sent-copies")
def sent_copies(
    profile: Annotated[str, typer.Argument(help="Profile name or id.")],
    state: Annotated[str, typer.Argument(help="on or off.")],
    as_user: AsUser = None,
) -> None:
    """Append a copy of each sent email to the Sent folder (on), or leave it to the server
    (off: Gmail and Exchange Online file submitted mail themselves)."""
    if state not in ("on", "off"):
        fail("say on or off")
    config = settings()
    store = open_store(config)
    principal = acting_principal(store, as_user)
    try:
        with store.transaction() as session:
            found = find_one(session, principal, EmailServerProfile, profile, "profile")
            values = {"save_sent_copy": state == "on"}
            profiles.update_profile(session, principal, found, values, secret_box(config))
    except CrmError as exc:
        fail(exc.detail)
    out.print(f"Sent copies for profile [bold]{profile}[/]: {state}.")
