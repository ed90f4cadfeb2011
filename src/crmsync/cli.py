"""The ``crmsync`` command.

    crmsync init             create or upgrade the database, first organisation and admin
    crmsync serve            the API (and, later, the sync engine) in one process
    crmsync db upgrade       migrate the database to the newest schema
    crmsync user add NAME    add a user
    crmsync token create NAME   issue an API token for a user

Exit codes scripts can trust: 0 done, 1 refused or failed (a message on stderr says why),
2 wrong usage. Passwords are read from a prompt or the environment, never echoed, and
tokens are printed once.
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from crmsync.config import Settings, load_settings
from crmsync.crm.access import load_principal
from crmsync.crm.auth import issue_token
from crmsync.crm.directory import create_user
from crmsync.crm.errors import CrmError
from crmsync.crm.models.org import SecurityRole, User
from crmsync.crm.setup import initialise, root_business_unit
from crmsync.crm.store import Store

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.split("\n\n")[0])
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
user_app = typer.Typer(no_args_is_help=True, help="Users.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")

out = Console()
err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:
        fail(f"configuration: {exc}")


def _store(settings: Settings, *, must_exist: bool = True) -> Store:
    store = Store.from_settings(settings)
    if must_exist and not store.is_initialised():
        fail("the database is not initialised; run `crmsync init` first")
    return store


def _password(option: str | None, env_name: str, prompt: str) -> str:
    if option:
        return option
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    return ""


@app.command()
def init(
    organisation: Annotated[str, typer.Option(help="Organisation name.")] = "My Organisation",
    admin: Annotated[str, typer.Option(help="Administrator's username.")] = "admin",
    admin_email: Annotated[str | None, typer.Option(help="Administrator's email.")] = None,
    admin_password: Annotated[
        str | None,
        typer.Option(
            help="Administrator's password (or CRMSYNC_ADMIN_PASSWORD; prompted on a "
            "terminal; generated and printed once otherwise)."
        ),
    ] = None,
) -> None:
    """Create or upgrade the database, the first organisation and its administrator."""
    settings = _settings()
    store = _store(settings, must_exist=False)
    try:
        with out.status("Migrating the database…"):
            store.migrate()
        password = _password(admin_password, "CRMSYNC_ADMIN_PASSWORD", "Admin password")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        with store.transaction() as session:
            result = initialise(
                session,
                organisation_name=organisation,
                admin_username=admin,
                admin_password=password,
                admin_email=admin_email,
            )
    except (SQLAlchemyError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.dispose()
    if not result.created:
        out.print(f"Database is up to date; organisation [bold]{organisation}[/] exists.")
        return
    out.print(f"Created organisation [bold]{organisation}[/] with administrator [bold]{admin}[/].")
    if generated:
        out.print(f"Administrator password (shown once): [bold]{password}[/]")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the API (OpenAPI at /docs) in this process."""
    import uvicorn

    from crmsync.api.app import create_app

    settings = _settings()
    store = _store(settings)
    application = create_app(settings, store)
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database schema (to the newest revision by default)."""
    store = _store(_settings(), must_exist=False)
    try:
        store.migrate(revision)
    except SQLAlchemyError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    out.print(f"Database at revision {revision}.")


def _admin(store: Store, username: str | None) -> User:
    """The user on whose authority a CLI change is made (the first administrator)."""
    with store.transaction() as session:
        query = select(User).where(User.is_active.is_(True)).order_by(User.created_at)
        if username:
            query = query.where(User.username == username)
        user = session.scalars(query).first()
        if user is None:
            fail(f"no active user {username!r}" if username else "no active user")
        return user


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    email: Annotated[list[str] | None, typer.Option(help="Email address (repeatable).")] = None,
    full_name: Annotated[str, typer.Option(help="Display name.")] = "",
    role: Annotated[list[str] | None, typer.Option(help="Security role name (repeatable).")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (or CRMSYNC_USER_PASSWORD; prompted on a tty).")
    ] = None,
    as_user: Annotated[
        str | None, typer.Option("--as", help="Act as this user (default: first admin).")
    ] = None,
) -> None:
    """Add a user to the organisation's root business unit."""
    store = _store(_settings())
    acting = _admin(store, as_user)
    secret = _password(password, "CRMSYNC_USER_PASSWORD", "Password") or None
    try:
        with store.transaction() as session:
            principal = load_principal(session.merge(acting))
            roles = []
            for name in role or []:
                found = session.scalar(
                    select(SecurityRole).where(
                        SecurityRole.organisation_id == principal.organisation_id,
                        SecurityRole.name == name,
                    )
                )
                if found is None:
                    fail(f"no security role named {name!r}")
                roles.append(found.id)
            user = create_user(
                session,
                principal,
                username=username,
                full_name=full_name,
                business_unit_id=root_business_unit(session, principal.organisation_id).id,
                email_addresses=email or [],
                password=secret,
                role_ids=roles,
            )
            user_id = user.id
    except CrmError as exc:
        fail(exc.detail)
    finally:
        store.dispose()
    out.print(f"Added user [bold]{username}[/] ({user_id}).")


@token_app.command("create")
def token_create(
    username: Annotated[str, typer.Argument(help="Whose token.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Issue an API token; it is printed once, to stdout, alone on its line."""
    store = _store(_settings())
    try:
        with store.transaction() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None or not user.is_active:
                fail(f"no active user {username!r}")
            _, clear = issue_token(session, user, name)
    finally:
        store.dispose()
    if sys.stdout.isatty():
        err.print("API token (shown once; only a hash is kept):")
    print(clear)


def main() -> None:
    app()
