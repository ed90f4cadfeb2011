"""Setting up and running: init, serve, db, user, token.

Only ``init`` and ``db upgrade`` may create a database; every other command opens an
existing one (``common.open_store``). A password given is never printed; a generated one
and a new API token are printed once, and only their hashes are kept.
"""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from crmsync.cli.common import (
    ORGANISATION_HELP,
    acting_principal,
    app,
    err,
    fail,
    find_one,
    find_user,
    open_store,
    operator_principal,
    out,
    read_secret,
    settings,
)
from crmsync.crm.auth import issue_token
from crmsync.crm.directory import create_user
from crmsync.crm.errors import CrmError
from crmsync.crm.models.org import SecurityRole
from crmsync.crm.setup import initialise, root_business_unit
from crmsync.logs import level_of, uvicorn_log_config

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
user_app = typer.Typer(no_args_is_help=True, help="Users.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


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
    store = open_store(settings(), must_exist=False)
    try:
        with out.status("Migrating the database…"):
            store.migrate()
        password = read_secret(admin_password, "CRMSYNC_ADMIN_PASSWORD", "Admin password")
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
    sync: Annotated[bool, typer.Option(help="Run the sync engine in this process too.")] = True,
) -> None:
    """Run the API (OpenAPI at /docs) and the sync engine in this process."""
    import uvicorn

    from crmsync.app import create_app

    config = settings()
    store = open_store(config)
    application = create_app(config, store, run_sync=sync)
    uvicorn.run(
        application,
        host=host or config.host,
        port=port or config.port,
        # crmsync's lines and uvicorn's (its access log too) through one handler.
        log_config=uvicorn_log_config(config),
        log_level=level_of(config),
    )


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database schema (to the newest revision by default)."""
    store = open_store(settings(), must_exist=False)
    try:
        store.migrate(revision)
    except SQLAlchemyError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    out.print(f"Database at revision {revision}.")


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
        str | None,
        typer.Option(
            "--as",
            help="Act as this user, with their rights (default: as the host's operator, who "
            "may add anyone, administrators included: the recovery path).",
        ),
    ] = None,
    organisation: Annotated[str | None, typer.Option(help=ORGANISATION_HELP)] = None,
) -> None:
    """Add a user to the organisation's root business unit."""
    store = open_store(settings())
    if as_user:
        principal = acting_principal(store, as_user, organisation)
    else:
        principal = operator_principal(store, organisation)
    secret = read_secret(password, "CRMSYNC_USER_PASSWORD", "Password") or None
    try:
        with store.transaction() as session:
            roles = [
                find_one(session, principal, SecurityRole, name, "security role").id
                for name in role or []
            ]
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
    organisation: Annotated[str | None, typer.Option(help=ORGANISATION_HELP)] = None,
) -> None:
    """Issue an API token; it is printed once, to stdout, alone on its line."""
    store = open_store(settings())
    try:
        with store.transaction() as session:
            user = find_user(session, username, organisation)
            _, clear = issue_token(session, user, name)
    finally:
        store.dispose()
    if sys.stdout.isatty():
        err.print("API token (shown once; only a hash is kept):")
    print(clear)
