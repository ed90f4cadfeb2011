"""What every command shares: consoles, failing with a message, settings, the store, and
finding mailboxes, profiles and roles by what a person types.

Exit codes scripts can trust: 0 done, 1 refused or failed (a message on stderr says why),
2 wrong usage (Typer's). Secrets are read from an option, the environment or a hidden
prompt — never echoed, never logged; a database URL is shown only with its password
masked.

Never create a database, or the directory it would live in, for a command that needs an
existing one: only ``crmsync init`` and ``crmsync db upgrade`` create (``open_store``).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

import crmsync
from crmsync.config import Settings, load_settings
from crmsync.core.types import Privilege
from crmsync.crm import access
from crmsync.crm.access import Principal, load_principal
from crmsync.crm.auth import find_login_organisation
from crmsync.crm.errors import CrmError
from crmsync.crm.models.mail import EmailServerProfile, Mailbox
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
    # Escaped: a path or a name may hold [brackets] Rich would read as markup. Not wrapped
    # by Rich, so a path in the message can be copied whole.
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # any bad configuration is the user's to fix
        fail(f"configuration: {exc}")


def open_store(config: Settings, *, must_exist: bool = True) -> Store:
    """The store the settings name; with ``must_exist`` (every command but ``init`` and
    ``db upgrade``), one that exists and is initialised, else a message naming it.

    Looking must not create: ``Store.from_settings`` makes ``data_dir`` and SQLite makes
    an empty file on first connect, so a missing SQLite file is refused before either
    can happen — run in the wrong directory, a command leaves nothing behind.
    """
    if not must_exist:
        return Store.from_settings(config)
    url = _database_url(config)
    shown = _shown(url)
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.is_file():
        fail(f"no crmsync database at {shown} — run `crmsync init`, or {_elsewhere(config)}")
    store = Store(config.resolved_database_url(), config.resolved_blob_dir())
    try:
        initialised = store.is_initialised()
    except SQLAlchemyError as exc:
        store.dispose()
        # The driver's own sentence (refused, unknown host, bad login), never the URL.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        fail(f"cannot open the crmsync database at {shown}: {reason} (or {_elsewhere(config)})")
    if not initialised:
        store.dispose()
        fail(
            f"the crmsync database at {shown} is not initialised — run `crmsync init`, "
            f"or {_elsewhere(config)}"
        )
    return store


def _database_url(config: Settings) -> URL:
    try:
        return make_url(config.resolved_database_url())
    except ArgumentError:
        # Not echoed: the text may hold a password.
        fail("configuration: database_url (CRMSYNC_DATABASE_URL) is not a database URL")


def _shown(url: URL) -> str:
    """What to call the database in a message: the SQLite file's absolute path, else the
    URL with its password masked."""
    path = _sqlite_file(url)
    return str(path) if path is not None else url.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names, relative paths taken from the working directory as
    SQLite does; None for other databases, in-memory ones and ``file:`` URIs."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    if url.database == ":memory:" or url.query.get("uri"):
        return None
    return Path(url.database).resolve()


def demo_data_dir() -> Path | None:
    """The data of ``scripts/demo`` in the checkout crmsync runs from, if it exists."""
    candidate = Path(crmsync.__file__).resolve().parents[2] / "var" / "demo"
    return candidate if (candidate / "crmsync.sqlite3").is_file() else None


def _elsewhere(config: Settings) -> str:
    """How to point a command at another database, to follow "or"."""
    if config.database_url:
        return "point CRMSYNC_DATABASE_URL at an existing crmsync database"
    demo = demo_data_dir()
    looked = config.data_dir.resolve()
    hint = f" (the demo's is {demo})" if demo is not None and demo != looked else ""
    return (
        f"point CRMSYNC_DATA_DIR at an existing instance{hint}, "
        "or CRMSYNC_DATABASE_URL at its database"
    )


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
AsUser = Annotated[str | None, typer.Option("--as", help=AS_USER_HELP)]

# What a person may type to name a row: its id, its name, and for a mailbox its address.
Named = TypeVar("Named", Mailbox, EmailServerProfile, SecurityRole)


def find_named(
    session: Session, principal: Principal, model: type[Named], selectors: Sequence[str]
) -> list[Named]:
    """The rows of ``model`` in the principal's organisation that a selector names — by
    id, name, or (a mailbox) email address — ordered by name; ``[]`` when none does.

    Mailboxes and profiles are found only when the principal may read them, so one it may
    not see is "not found", as in the API. Security roles belong to the directory and are
    found by name alone; granting one is checked where it is granted.
    """
    ids = [found for found in map(_uuid, selectors) if found is not None]
    names: list[ColumnElement[bool]] = [model.id.in_(ids), model.name.in_(selectors)]
    if model is Mailbox:
        names.append(Mailbox.email_address.in_(selectors))
    query = select(model).where(model.organisation_id == principal.organisation_id, or_(*names))
    if model is not SecurityRole:
        query = query.where(access.visible(model, principal))
    return list(session.scalars(query.order_by(model.name)))


def find_one(
    session: Session, principal: Principal, model: type[Named], selector: str, what: str
) -> Named:
    """The one row ``selector`` names (see ``find_named``), else a message: none, or
    several (two mailboxes may share a name; their ids and addresses differ)."""
    found = find_named(session, principal, model, [selector])
    if not found:
        fail(f"no {what} {selector!r}")
    if len(found) > 1:
        fail(f"{selector!r} names {len(found)} of them: name the {what} by its id")
    return found[0]


def find_mailboxes(
    session: Session,
    principal: Principal,
    selectors: Sequence[str],
    privilege: Privilege = Privilege.READ,
) -> list[Mailbox]:
    """Mailboxes by id, email address or name, every visible one for ``all``; a message
    when none matches. With a privilege beyond read, each must grant it (``CrmError``
    otherwise, for the caller to report)."""
    if list(selectors) == ["all"]:
        query = select(Mailbox).where(access.visible(Mailbox, principal))
        found = list(session.scalars(query.order_by(Mailbox.name)))
    else:
        found = find_named(session, principal, Mailbox, selectors)
    if not found:
        fail(f"no mailbox matches {', '.join(selectors)}")
    if privilege is not Privilege.READ:
        for mailbox in found:
            access.require(session, principal, mailbox, privilege)
    return found


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def progress() -> Progress:
    """A progress bar on stderr (stdout stays for tables), gone when done."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=err, transient=True)
