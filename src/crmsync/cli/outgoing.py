"""Outgoing email by hand: ``crmsync send once`` and the Sent-copy setting of a profile.

    crmsync send once [--mailbox M ...] [--limit N]   one pass per mailbox with queued
                                                      email, a progress bar per email
    crmsync send sent-copies PROFILE on|off           append copies to Sent, or not

Exit codes as every command: 0 done, 1 a mailbox failed (the table says why).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import or_, select

from crmsync.cli.common import (
    AS_USER_HELP,
    acting_principal,
    app,
    err,
    fail,
    open_store,
    out,
    secret_box,
    settings,
)
from crmsync.crm import access, mailboxes, profiles
from crmsync.crm.access import Principal
from crmsync.crm.errors import CrmError
from crmsync.crm.models.mail import EmailServerProfile, Mailbox
from crmsync.crm.types import Privilege
from crmsync.sync.outgoing import OutgoingOptions, OutgoingReport, pending_by_mailbox, sync_outgoing
from crmsync.sync.outgoing_decide import Verdict

send_app = typer.Typer(no_args_is_help=True, help="Outgoing email: send queued CRM email.")
app.add_typer(send_app, name="send")

AsUser = Annotated[str | None, typer.Option("--as", help=AS_USER_HELP)]


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _chosen(session: Any, principal: Principal, selectors: list[str] | None) -> list[Mailbox]:
    """The named mailboxes (id, address or name), else every one with queued email."""
    query = select(Mailbox).where(access.visible(Mailbox, principal))
    if selectors:
        ids = [found for found in (_uuid(s) for s in selectors) if found is not None]
        query = query.where(
            or_(
                Mailbox.email_address.in_(selectors),
                Mailbox.name.in_(selectors),
                Mailbox.id.in_(ids),
            )
        )
    else:
        query = query.where(Mailbox.id.in_(list(pending_by_mailbox(session))))
    chosen = list(session.scalars(query.order_by(Mailbox.name)))
    if selectors and not chosen:
        fail(f"no mailbox matches {', '.join(selectors)}")
    for mailbox in chosen:
        mailboxes.get_mailbox(session, principal, mailbox.id, Privilege.WRITE)
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
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as progress:
        total = sum(min(limit, waiting.get(mailbox_id, 0)) for mailbox_id, _ in chosen)
        task = progress.add_task("Outgoing email", total=total)

        def advance(_email_id: uuid.UUID, _verdict: Verdict) -> None:
            progress.advance(task)

        options = OutgoingOptions(max_emails=limit, on_email=advance)
        for mailbox_id, name in chosen:
            progress.update(task, description=f"Outgoing email: {name}")
            report = sync_outgoing(store, box, mailbox_id, options)
            failed += report.error is not None
            table.add_row(*_row(name, report))
    out.print(table)
    if failed:
        raise typer.Exit(1)


@send_app.command("sent-copies")
def sent_copies(
    profile: Annotated[str, typer.Argument(help="Profile name.")],
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
            found = session.scalar(
                select(EmailServerProfile).where(
                    EmailServerProfile.organisation_id == principal.organisation_id,
                    EmailServerProfile.name == profile,
                )
            )
            if found is None:
                fail(f"no profile named {profile!r}")
            values = {"save_sent_copy": state == "on"}
            profiles.update_profile(session, principal, found, values, secret_box(config))
    except CrmError as exc:
        fail(exc.detail)
    out.print(f"Sent copies for profile [bold]{profile}[/]: {state}.")
