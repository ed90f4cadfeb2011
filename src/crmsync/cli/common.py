"""What every command shares: consoles, failing with a message, settings, the store.

Exit codes scripts can trust: 0 done, 1 refused or failed (a message on stderr says why),
2 wrong usage (Typer's). Secrets are read from an option, the environment or a hidden
prompt — never echoed, never logged.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.config import Settings, load_settings
from crmsync.crm import access
from crmsync.crm.access import Principal, load_principal
from crmsync.crm.auth import find_login_organisation
from crmsync.crm.errors import CrmError
from crmsync.crm.models.org import Organisation, SecurityRole, User
from crmsync.crm.secrets import SecretBox, SecretKeyError
from crmsync.crm.setup import root_business_unit
from crmsync.crm.store import Store

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="crmsync: server-side synchronization between mail systems and the CRM.",
)
out = Console()
err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # any bad configuration is the user's to fix
        fail(f"configuration: {exc}")


def open_store(config: Settings, *, must_exist: bool = True) -> Store:
    store = Store.from_settings(config)
    if must_exist and not store.is_initialised():
        fail("the database is not initialised; run `crmsync init` first")
    return store


def secret_box(config: Settings) -> SecretBox:
    try:
        return SecretBox.from_settings(config)
    except SecretKeyError as exc:
        fail(str(exc))


def read_secret(option: str | None, env_name: str, prompt: str) -> str:
    """The option, else the environment variable, else a hidden prompt on a terminal."""
    if option:
        return option
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    return ""


def _organisation(session: Session, name: str | None) -> Organisation:
    try:
        organisation = find_login_organisation(session, name)
    except CrmError:
        fail("this instance has several organisations: name one with --organisation")
    if organisation is None:
        fail(f"no organisation named {name!r}" if name else "no organisation; run crmsync init")
    return organisation


def find_user(session: Session, username: str, organisation: str | None = None) -> User:
    """The active user ``username`` of the named (or the only) organisation."""
    org = _organisation(session, organisation)
    user = session.scalar(
        select(User).where(User.organisation_id == org.id, User.username == username)
    )
    if user is None or not user.is_active:
        fail(f"no active user {username!r}")
    return user


def acting_principal(
    store: Store, username: str | None, organisation: str | None = None
) -> Principal:
    """On whose authority a CLI change is made: ``--as USER``, else the first active
    System Administrator of the organisation."""
    with store.transaction() as session:
        if username:
            return load_principal(find_user(session, username, organisation))
        org = _organisation(session, organisation)
        admins = (
            select(User)
            .join(User.roles)
            .where(
                User.organisation_id == org.id,
                User.is_active.is_(True),
                SecurityRole.is_system.is_(True),
            )
            .order_by(User.created_at)
        )
        user = session.scalars(admins).first()
        if user is None:
            fail("the organisation has no active administrator; add one with `crmsync user add`")
        return load_principal(user)


def operator_principal(store: Store, organisation: str | None = None) -> Principal:
    """The host's operator: every privilege in the organisation, whoever holds what.

    Whoever runs the CLI on the host can read the database and the secret key anyway; this
    is the recovery path when no administrator is left who could act in the application.
    """
    with store.transaction() as session:
        org = _organisation(session, organisation)
        return access.operator_principal(org.id, root_business_unit(session, org.id).id)


AS_USER_HELP = "Act as this user (default: the first administrator)."
ORGANISATION_HELP = "The organisation (needed only when the instance has several)."
