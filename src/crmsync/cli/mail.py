"""Connecting mail systems: profiles, mailboxes, approval, Test & Enable, alerts, secrets.

What a typed mailbox or profile names is decided in one place (``common.find_*``), never
by a query of its own here. Passwords and keys are never echoed; tables show a channel's
state, not its credentials.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

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
    read_secret,
    secret_box,
    settings,
)
from crmsync.core.types import (
    AlertState,
    Approval,
    Channel,
    ConnectionSecurity,
    CredentialScope,
    IncomingMethod,
    Privilege,
    ServerType,
    SyncMethod,
)
from crmsync.crm import alerts, mailboxes, profiles
from crmsync.crm.errors import CrmError
from crmsync.crm.models.mail import EmailServerProfile, Mailbox, MailboxTest
from crmsync.crm.secrets import (
    KEY_FILE,
    SecretBox,
    read_or_create_key_file,
    rotate_all,
    write_key_file,
)
from crmsync.crm.store import Store
from crmsync.logs import logging_configured
from crmsync.sync.check_enable import check_and_enable
from crmsync.sync.incoming import IncomingOptions, sync_incoming

profile_app = typer.Typer(no_args_is_help=True, help="Email server profiles.")
mailbox_app = typer.Typer(
    no_args_is_help=True, help="Mailboxes: settings, approval, Test & Enable."
)
secrets_app = typer.Typer(no_args_is_help=True, help="Encryption of stored credentials.")
app.add_typer(profile_app, name="profile")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(secrets_app, name="secrets")


@profile_app.command("add")
def profile_add(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    server_type: Annotated[
        ServerType, typer.Option("--type", help="Server type.")
    ] = ServerType.IMAP_SMTP,
    incoming_host: Annotated[str | None, typer.Option(help="IMAP/POP3 host.")] = None,
    incoming_port: Annotated[int | None, typer.Option(help="IMAP/POP3 port.")] = None,
    incoming_security: Annotated[ConnectionSecurity | None, typer.Option()] = None,
    outgoing_host: Annotated[str | None, typer.Option(help="SMTP host.")] = None,
    outgoing_port: Annotated[int | None, typer.Option(help="SMTP port.")] = None,
    outgoing_security: Annotated[ConnectionSecurity | None, typer.Option()] = None,
    allow_plaintext: Annotated[bool, typer.Option(help="Allow unencrypted connections.")] = False,
    ca_file: Annotated[Path | None, typer.Option(help="PEM file of CAs to trust.")] = None,
    credential_scope: Annotated[CredentialScope | None, typer.Option()] = None,
    username: Annotated[str | None, typer.Option(help="Profile-wide login.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Profile-wide password (or CRMSYNC_PROFILE_PASSWORD).")
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Default for new mailboxes.")] = False,
    as_user: AsUser = None,
) -> None:
    """Add an email server profile."""
    config = settings()
    store = open_store(config)
    principal = acting_principal(store, as_user)
    values: dict[str, Any] = {
        "name": name,
        "server_type": server_type,
        "incoming_host": incoming_host,
        "incoming_port": incoming_port,
        "incoming_security": incoming_security,
        "outgoing_host": outgoing_host,
        "outgoing_port": outgoing_port,
        "outgoing_security": outgoing_security,
        "allow_plaintext": allow_plaintext,
        "ca_pem": ca_file.read_text() if ca_file else None,
        "credential_scope": credential_scope,
        "username": username,
        "password": read_secret(password, "CRMSYNC_PROFILE_PASSWORD", "Profile password")
        if credential_scope is CredentialScope.PROFILE
        else None,
        "is_default": default,
    }
    try:
        with store.transaction() as session:
            profile = profiles.create_profile(session, principal, values, secret_box(config))
            profile_id = profile.id
    except CrmError as exc:
        fail(exc.detail)
    out.print(f"Added profile [bold]{name}[/] ({profile_id}).")


@profile_app.command("list")
def profile_list() -> None:
    """List email server profiles."""
    store = open_store(settings())
    table = Table("name", "type", "incoming", "outgoing", "credentials", "default")
    with store.transaction() as session:
        for profile in session.scalars(
            select(EmailServerProfile).order_by(EmailServerProfile.name)
        ):
            table.add_row(
                profile.name,
                profile.server_type.value,
                _where(profile.incoming_host, profile.incoming_port, profile.incoming_security),
                _where(profile.outgoing_host, profile.outgoing_port, profile.outgoing_security),
                profile.credential_scope.value,
                "yes" if profile.is_default else "",
            )
    out.print(table)


def _where(host: str | None, port: int | None, security: ConnectionSecurity) -> str:
    return f"{host}:{port} {security.value}" if host else ""


@mailbox_app.command("list")
def mailbox_list(
    approval: Annotated[Approval | None, typer.Option(help="Only this approval state.")] = None,
) -> None:
    """List mailboxes with their approval and channel health."""
    store = open_store(settings())
    # One list gives both the channel headings and the cells under them, so they cannot
    # come out in different orders.
    channels = list(Channel)
    table = Table("mailbox", "address", "profile", "approval", *(c.value for c in channels))
    with store.transaction() as session:
        query = select(Mailbox).order_by(Mailbox.name)
        if approval is not None:
            query = query.where(Mailbox.approval == approval)
        for mailbox in session.scalars(query):
            table.add_row(
                mailbox.name,
                mailbox.email_address or "",
                mailbox.profile.name if mailbox.profile else "",
                mailbox.approval.value,
                *(_channel_state(mailbox, which) for which in channels),
            )
    out.print(table)


def _channel_state(mailbox: Mailbox, which: Channel) -> str:
    """``on success``, ``off failure AUTH_FAILED``; empty if the mailbox lacks the channel."""
    try:
        channel = mailbox.channel(which)
    except LookupError:
        return ""
    state = "on" if channel.enabled else "off"
    return " ".join(filter(None, (state, channel.status.value, channel.last_error_code)))


@mailbox_app.command("set")
def mailbox_set(
    selector: Annotated[str, typer.Argument(help="Mailbox id, address or name.")],
    profile: Annotated[str | None, typer.Option(help="Profile name or id.")] = None,
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    username: Annotated[str | None, typer.Option(help="Login, if not the address.")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Password (or CRMSYNC_MAILBOX_PASSWORD; prompted with --ask-password)."),
    ] = None,
    ask_password: Annotated[bool, typer.Option(help="Prompt for the password.")] = False,
    incoming: Annotated[IncomingMethod | None, typer.Option(help="Incoming method.")] = None,
    outgoing: Annotated[SyncMethod | None, typer.Option(help="Outgoing method.")] = None,
    act: Annotated[SyncMethod | None, typer.Option(help="Appointments/contacts/tasks.")] = None,
    as_user: AsUser = None,
) -> None:
    """Change a mailbox's profile, address, credentials or methods."""
    config = settings()
    store = open_store(config)
    principal = acting_principal(store, as_user)
    values: dict[str, Any] = {}
    for key, value in (
        ("email_address", email),
        ("username", username),
        ("incoming_method", incoming),
        ("outgoing_method", outgoing),
        ("act_method", act),
    ):
        if value is not None:
            values[key] = value
    secret = password or (
        read_secret(None, "CRMSYNC_MAILBOX_PASSWORD", "Mailbox password") if ask_password else ""
    )
    if secret or os.environ.get("CRMSYNC_MAILBOX_PASSWORD"):
        values["password"] = secret or os.environ["CRMSYNC_MAILBOX_PASSWORD"]
    try:
        with store.transaction() as session:
            mailbox = find_one(session, principal, Mailbox, selector, "mailbox")
            if profile is not None:
                chosen = find_one(session, principal, EmailServerProfile, profile, "profile")
                values["profile_id"] = chosen.id
            mailboxes.update_mailbox(session, principal, mailbox, values, secret_box(config))
            name = mailbox.name
    except CrmError as exc:
        fail(exc.detail)
    out.print(f"Updated mailbox [bold]{name}[/].")


def _set_approval(selectors: list[str], approval: Approval, as_user: str | None) -> None:
    store = open_store(settings())
    principal = acting_principal(store, as_user)
    try:
        with store.transaction() as session:
            chosen = find_mailboxes(session, principal, selectors)
            for mailbox in chosen:
                mailboxes.set_approval(session, principal, mailbox, approval)
    except CrmError as exc:
        fail(exc.detail)
    out.print(f"{approval.value.capitalize()}: {', '.join(m.name for m in chosen)}")


@mailbox_app.command("approve")
def mailbox_approve(
    selectors: Annotated[list[str], typer.Argument(help="Mailbox ids, addresses, names or 'all'.")],
    as_user: AsUser = None,
) -> None:
    """Approve mailboxes (email is processed only for approved mailboxes by default)."""
    _set_approval(selectors, Approval.APPROVED, as_user)


@mailbox_app.command("reject")
def mailbox_reject(
    selectors: Annotated[list[str], typer.Argument(help="Mailbox ids, addresses or names.")],
    as_user: AsUser = None,
) -> None:
    """Reject mailboxes; their channels are disabled."""
    _set_approval(selectors, Approval.REJECTED, as_user)


@mailbox_app.command("test")
def mailbox_test(
    selectors: Annotated[list[str], typer.Argument(help="Mailbox ids, addresses, names or 'all'.")],
    parallel: Annotated[int, typer.Option(min=1, max=64, help="Mailboxes checked at once.")] = 8,
    as_user: AsUser = None,
) -> None:
    """Test & Enable: check each mailbox against its servers, step by step."""
    store, box, chosen = _chosen_for_work(selectors, as_user)
    runs = _run_checks(store, box, chosen, parallel)
    failed = _report(runs)
    if failed:
        raise typer.Exit(1)


def _chosen_for_work(
    selectors: list[str], as_user: str | None
) -> tuple[Store, SecretBox, list[tuple[uuid.UUID, str]]]:
    """Store, key and the (id, name) of each chosen mailbox the caller may work on."""
    config = settings()
    store = open_store(config)
    box = secret_box(config)
    principal = acting_principal(store, as_user)
    try:
        with store.transaction() as session:
            found = find_mailboxes(session, principal, selectors, Privilege.WRITE)
            chosen = [(mailbox.id, mailbox.name) for mailbox in found]
    except CrmError as exc:
        fail(exc.detail)
    return store, box, chosen


def _run_checks(
    store: Store, box: SecretBox, chosen: list[tuple[Any, str]], parallel: int
) -> list[tuple[str, MailboxTest]]:
    runs: list[tuple[str, MailboxTest]] = []
    with progress() as bar:
        task = bar.add_task("Test & Enable", total=len(chosen))
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = {pool.submit(check_and_enable, store, box, mid): name for mid, name in chosen}
            for future in as_completed(futures):
                runs.append((futures[future], future.result()))
                bar.advance(task)
    return sorted(runs, key=lambda run: run[0])


def _report(runs: list[tuple[str, MailboxTest]]) -> int:
    table = Table("mailbox", "channel", "step", "result", "seconds", "detail")
    failed = 0
    for name, run in runs:
        failed += 0 if run.ok else 1
        for step in run.steps:
            mark = "[green]ok[/]" if step["ok"] else f"[red]{step['code']}[/]"
            table.add_row(
                name, step["channel"], step["name"], mark, f"{step['seconds']:.3f}", step["detail"]
            )
    out.print(table)
    out.print(f"{len(runs) - failed} passed, {failed} failed")
    return failed


@app.command("alerts")
def alerts_list(
    mailbox: Annotated[
        str | None, typer.Option(help="Only this mailbox (id, address, name).")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also acknowledged, dismissed and resolved ones.")
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Show open alerts, newest first."""
    store = open_store(settings())
    principal = acting_principal(store, as_user)
    table = Table("when", "severity", "state", "mailbox", "code", "title", "what to do")
    with store.transaction() as session:
        only = find_one(session, principal, Mailbox, mailbox, "mailbox") if mailbox else None
        page = alerts.visible_alerts(
            session,
            principal,
            mailbox_id=only.id if only else None,
            states=None if show_all else (AlertState.OPEN,),
            limit=100,
        )
        names = {m.id: m.name for m in session.scalars(select(Mailbox))}
        for alert in page.items:
            table.add_row(
                f"{alert.last_seen_at:%Y-%m-%d %H:%M}",
                alert.severity.value,
                alert.state.value,
                names.get(alert.mailbox_id, "") if alert.mailbox_id else "",
                alert.code,
                alert.title + (f" ({alert.detail})" if alert.detail else ""),
                alert.remediation,
            )
    out.print(table)


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored credential with a new key.

    With the key file (the default), a new key is made and the old one dropped once
    everything is re-encrypted. With CRMSYNC_SECRET_KEY, put the new key first
    ("new,old"), run this, then remove the old key from the variable.
    """
    config = settings()
    store = open_store(config)
    if config.secret_key is not None:
        box = secret_box(config)
        with store.transaction() as session:
            count = rotate_all(session, box)
        out.print(f"Re-encrypted {count} secret(s) with the first key of CRMSYNC_SECRET_KEY.")
        return
    key_file = config.data_dir / KEY_FILE
    old_keys = read_or_create_key_file(key_file)
    new_key = SecretBox.generate_key()
    write_key_file(key_file, [new_key, *old_keys])
    with store.transaction() as session:
        count = rotate_all(session, SecretBox([new_key, *old_keys]))
    write_key_file(key_file, [new_key])
    out.print(f"Re-encrypted {count} secret(s) with a new key in {key_file}.")


sync_app = typer.Typer(no_args_is_help=True, help="Run synchronization by hand.")
app.add_typer(sync_app, name="sync")


@sync_app.command("once")
def sync_once(
    mailbox: Annotated[
        list[str] | None, typer.Option(help="Only these mailboxes (id, address, name).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Messages per commit.")] = 200,
    as_user: AsUser = None,
) -> None:
    """One incoming pass over every runnable mailbox (or those named), with progress."""
    store, box, chosen = _chosen_for_work(mailbox or ["all"], as_user)
    options = IncomingOptions(batch_messages=batch)
    table = Table("mailbox", "result", "messages", "tracked", "failed", "detail")
    failed = 0
    # The engine's own lines (one per pass, failures) above the bar, on stderr.
    with logging_configured(settings()), progress() as bar:
        task = bar.add_task("Incoming email", total=len(chosen))
        for mailbox_id, name in chosen:
            bar.update(task, description=f"Incoming email: {name}")
            report = sync_incoming(store, box, mailbox_id, options)
            bar.advance(task)
            if not report.ran:
                table.add_row(name, "skipped", "", "", "", report.why_not)
                continue
            failed += report.error is not None
            table.add_row(
                name,
                "[red]failed[/]" if report.error else "[green]ok[/]",
                str(report.seen),
                str(report.tracked),
                str(report.failed),
                str(report.error or ""),
            )
    out.print(table)
    if failed:
        raise typer.Exit(1)
