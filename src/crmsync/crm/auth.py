"""Passwords and API tokens.

Passwords are hashed with argon2id (argon2-cffi). API tokens are ``crms_`` plus 256 random
bits; only their SHA-256 is stored, with a short prefix so people can tell tokens apart.
A token is shown once, when created, and never again.

Which kinds of token a route accepts is decided here, in ``authenticate_token``, and
nowhere else: ``GENERAL_KINDS`` (API tokens and login sessions) for every route,
``PANEL_KINDS`` (those and side panel tokens) for the panel's routes. A panel token
anywhere else is ``TokenOutOfScope`` (403); a connect code (crm/connect.py) is never a
credential and is refused as an unknown token (401).

Must never log, store or return a password or a token in clear, and never let a token
authenticate a route its kind is not meant for.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.types import TokenKind
from crmsync.crm.db import utcnow
from crmsync.crm.errors import AuthenticationFailed, NotFound, RuleViolation
from crmsync.crm.models.org import ApiToken, Organisation, User

TOKEN_PREFIX = "crms_"  # noqa: S105 - a public marker, not a secret
_hasher = PasswordHasher()

# What every route accepts, and what the side panel's routes accept besides.
GENERAL_KINDS: frozenset[TokenKind] = frozenset({TokenKind.API, TokenKind.SESSION})
PANEL_KINDS: frozenset[TokenKind] = GENERAL_KINDS | {TokenKind.PANEL}


class TokenOutOfScope(AuthenticationFailed):
    """A valid token of a kind this route does not accept (a panel token off the panel).

    An AuthenticationFailed, so whoever handles a failed authentication handles it (a web
    page sends the browser to log in), but 403: the token is good, only not here.
    """

    code = "TOKEN_OUT_OF_SCOPE"
    status = 403


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session,
    user: User,
    name: str,
    *,
    kind: TokenKind = TokenKind.API,
    lifetime: timedelta | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the clear token (show it once)."""
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        kind=kind,
        token_hash=digest_token(clear),
        prefix=clear[: len(TOKEN_PREFIX) + 6],
        expires_at=utcnow() + lifetime if lifetime else None,
    )
    session.add(row)
    session.flush()
    return row, clear


def authenticate_token(
    session: Session,
    token: str,
    now: datetime | None = None,
    *,
    kinds: Collection[TokenKind] = GENERAL_KINDS,
) -> User:
    """The active user a valid, unexpired, unrevoked token of one of ``kinds`` belongs to.

    An unknown, expired or revoked token, or a connect code, is AuthenticationFailed (401);
    a valid token of another kind is TokenOutOfScope (403), so a panel whose token was
    sent to the wrong route learns why.
    """
    now = now or utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest_token(token)))
    if (
        row is None
        or row.revoked
        or (row.expires_at is not None and row.expires_at <= now)
        # Connect codes are never credentials, and look like no token at all.
        or row.kind is TokenKind.CONNECT_CODE
    ):
        raise AuthenticationFailed("Invalid or expired token")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("Invalid or expired token")
    if row.kind not in kinds:
        if row.kind is TokenKind.PANEL:
            raise TokenOutOfScope("Panel tokens work only with the side panel (/api/v1/panel/...)")
        raise TokenOutOfScope(f"A {row.kind.value} token does not work here")
    # Recording use at most once a minute keeps reads from turning into writes.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return user


# What a person's token list shows: tokens they made or connected, not their logins or
# the connect codes in flight.
LISTED_KINDS: frozenset[TokenKind] = frozenset({TokenKind.API, TokenKind.PANEL})


def list_tokens(session: Session, user_id: uuid.UUID) -> Sequence[ApiToken]:
    """The user's API and panel tokens, oldest first, revoked and expired ones included."""
    query = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind.in_(LISTED_KINDS))
    return session.scalars(query.order_by(ApiToken.created_at, ApiToken.id)).all()


def revoke_token(session: Session, user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken:
    """Revoke one of the user's tokens (a login session ends too); NotFound for another's."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id:
        raise NotFound("token", token_id)
    row.revoked = True
    return row


def find_login_organisation(session: Session, organisation: str | None) -> Organisation | None:
    """The organisation a login names, or the instance's only one when it names none.

    Raises a rule violation when several organisations exist and none is named: usernames
    are unique per organisation only. None when the name matches no organisation (the
    caller then fails the login as for a wrong password).
    """
    if organisation:
        return session.scalar(select(Organisation).where(Organisation.name == organisation))
    found = session.scalars(select(Organisation).limit(2)).all()
    if len(found) > 1:
        raise RuleViolation(
            "ORGANISATION_REQUIRED",
            "This instance serves several organisations: name yours",
            field="organisation",
        )
    return found[0] if found else None


def authenticate_password(
    session: Session, username: str, password: str, organisation: str | None = None
) -> User:
    """The active user with this username and password, or AuthenticationFailed.

    Every failure costs one argon2 verification — unknown organisation, unknown user, a
    user without a password, an inactive user, a wrong password — so the time taken does
    not tell which usernames exist.
    """
    org = find_login_organisation(session, organisation)
    user = None
    if org is not None:
        user = session.scalar(
            select(User).where(User.organisation_id == org.id, User.username == username)
        )
    stored = user.password_hash if user is not None else None
    matches = verify_password(stored or _dummy_hash(), password) and stored is not None
    if not matches or user is None or not user.is_active:
        raise AuthenticationFailed("Wrong username or password")
    return user


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))
