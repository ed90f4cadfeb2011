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

from crmsync.config import Settings, load_settings
from crmsync.crm.access import Principal, load_principal
from crmsync.crm.models.org import User
from crmsync.crm.secrets import SecretBox, SecretKeyError
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


def acting_principal(store: Store, username: str | None) -> Principal:
    """On whose authority a CLI change is made: ``--as USER``, else the first active admin."""
    with store.transaction() as session:
        query = select(User).where(User.is_active.is_(True)).order_by(User.created_at)
        if username:
            query = query.where(User.username == username)
        user = session.scalars(query).first()
        if user is None:
            fail(f"no active user {username!r}" if username else "no active user")
        return load_principal(user)


AS_USER_HELP = "Act as this user (default: the first administrator)."
