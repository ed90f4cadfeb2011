"""Connecting mail systems: profiles, mailboxes, approval, Test & Enable, alerts, secrets."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
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
    read_secret,
    secret_box,
    settings,
)
from crmsync.crm import access, alerts, mailboxes, profiles
from crmsync.crm.access import Principal
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
from crmsync.crm.types import (
    Approval,
    ConnectionSecurity,
    CredentialScope,
    IncomingMethod,
    Privilege,
    ServerType,
    SyncMethod,
)
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

AsUser = Annotated[str | None, typer.Option("--as", help=AS_USER_HELP)]


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


def _find_mailboxes(session: Any, principal: Principal, selectors: list[str]) -> list[Mailbox]:
    """Mailboxes by id, email address or name; every visible one for ``all``."""
    query = select(Mailbox).where(access.visible(Mailbox, principal))
    if selectors != ["all"]:
        query = query.where(
            or_(
                Mailbox.email_address.in_(selectors),
                Mailbox.name.in_(selectors),
                *[Mailbox.id == _uuid(s) for s in selectors if _uuid(s)],
            )
        )
    found = list(session.scalars(query.order_by(Mailbox.name)))
    if not found:
        fail(f"no mailbox matches {', '.join(selectors)}")
    return found


def _uuid(text: str) -> Any:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@mailbox_app.command("list")
def mailbox_list(
    approval: Annotated[Approval | None, typer.Option(help="Only this approval state.")] = None,
) -> None:
    """List mailboxes with their approval and channel health."""
    store = open_store(settings())
    table = Table("mailbox", "address", "profile", "approval", "incoming", "outgoing", "act")
    with store.transaction() as session:
        query = select(Mailbox).order_by(Mailbox.name)
        if approval is not None:
            query = query.where(Mailbox.approval == approval)
        for mailbox in session.scalars(query):
            cells = []
            for channel in mailbox.channels:
                state = "on" if channel.enabled else "off"
                cells.append(f"{state} {channel.status.value} {channel.last_error_code or ''}")
            table.add_row(
                mailbox.name,
                mailbox.email_address or "",
                mailbox.profile.name if mailbox.profile else "",
                mailbox.approval.value,
                *cells,
            )
    out.print(table)


@mailbox_app.command("set")
def mailbox_set(
    selector: Annotated[str, typer.Argument(help="Mailbox id, address or name.")],
    profile: Annotated[str | None, typer.Option(help="Profile name.")] = None,
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
            (mailbox,) = _find_mailboxes(session, principal, [selector])[:1]
            if profile is not None:
                found = session.scalar(
                    select(EmailServerProfile).where(
                        EmailServerProfile.organisation_id == principal.organisation_id,
                        EmailServerProfile.name == profile,
                    )
                )
                if found is None:
                    fail(f"no profile named {profile!r}")
                values["profile_id"] = found.id
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
            chosen = _find_mailboxes(session, principal, selectors)
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
            chosen = [(m.id, m.name) for m in _find_mailboxes(session, principal, selectors)]
            for mailbox_id, _ in chosen:
                mailboxes.get_mailbox(session, principal, mailbox_id, Privilege.WRITE)
    except CrmError as exc:
        fail(exc.detail)
    return store, box, chosen


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=err, transient=True)


def _run_checks(
    store: Store, box: SecretBox, chosen: list[tuple[Any, str]], parallel: int
) -> list[tuple[str, MailboxTest]]:
    runs: list[tuple[str, MailboxTest]] = []
    with _progress() as progress:
        task = progress.add_task("Test & Enable", total=len(chosen))
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = {pool.submit(check_and_enable, store, box, mid): name for mid, name in chosen}
            for future in as_completed(futures):
                runs.append((futures[future], future.result()))
                progress.advance(task)
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
    as_user: AsUser = None,
) -> None:
    """Show recent alerts, newest first."""
    store = open_store(settings())
    principal = acting_principal(store, as_user)
    table = Table("when", "severity", "mailbox", "code", "title", "what to do")
    with store.transaction() as session:
        mailbox_id = _find_mailboxes(session, principal, [mailbox])[0].id if mailbox else None
        page = alerts.visible_alerts(session, principal, mailbox_id=mailbox_id, limit=100)
        names = {m.id: m.name for m in session.scalars(select(Mailbox))}
        for alert in page.items:
            table.add_row(
                f"{alert.last_seen_at:%Y-%m-%d %H:%M}",
                alert.severity.value,
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
    with _progress() as progress:
        task = progress.add_task("Incoming email", total=len(chosen))
        for mailbox_id, name in chosen:
            progress.update(task, description=f"Incoming email: {name}")
            report = sync_incoming(store, box, mailbox_id, options)
            progress.advance(task)
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
