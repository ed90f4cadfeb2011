"""Connecting a side panel: a one-time code, exchanged for a scoped, revocable panel token.

The flow, as Odoo's mail plugin has it::

    signed-in user ──issue_connect_code──▶ "7K3M-Q9XD" (5 minutes, single use)
          │ types it into the panel, or the add-in's login dialog hands it over
          ▼
    panel ──exchange_connect_code(code, "Outlook on LAPTOP-1")──▶ crms_… (PANEL, 90 days)
          │ Authorization: Bearer crms_…  on /api/v1/panel/... only (crm/auth.py)
          ▼
    owner revokes it in their token list, or the panel disconnects (revoke_panel_token)

Both are ``ApiToken`` rows, told apart by ``kind``; only a SHA-256 of either is stored.

A code is 8 characters of Crockford's base32 (``0-9 A-Z`` without ``I L O U``), shown as
``XXXX-XXXX``: 40 random bits, easy to type and read aloud. Reading it back forgives
case, spaces, dashes, ``O`` for ``0`` and ``I``/``L`` for ``1``. 40 bits are not a
password: they are safe because a code lives ``CODE_LIFETIME``, is deleted by its first
use, and guessing is throttled per client address (``code_guess_key``, crm/throttle.py)
before a code is looked at. At ``CODE_POLICY``'s pace one address gets fewer than 20
guesses in a code's lifetime (10 free, then waits of 1, 2, 4 … seconds) and four an hour
once the wait reaches its 15-minute cap, against 2**40 values. Each user has at most
``LIVE_CODES_PER_USER`` live codes, so one person cannot widen the target either.

Must never store or log a code or a token in clear, never let a code be used twice, and
never accept a code past its expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.core.types import TokenKind
from crmsync.crm.auth import digest_token, issue_token
from crmsync.crm.db import utcnow
from crmsync.crm.errors import AuthenticationFailed, Forbidden
from crmsync.crm.models.org import ApiToken, LoginThrottle, User
from crmsync.crm.throttle import ThrottleKey, ThrottlePolicy

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
CODE_LENGTH = 8
CODE_LIFETIME = timedelta(minutes=5)
PANEL_TOKEN_LIFETIME = timedelta(days=90)
LIVE_CODES_PER_USER = 3
# Typing a code wrong once or twice is human; a dozen misses from one address is guessing.
CODE_POLICY = ThrottlePolicy(free_failures=10)

_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = " -\t"


class ConnectCodeInvalid(AuthenticationFailed):
    """The code is unknown, used or expired; which of them is not said."""

    code = "CONNECT_CODE_INVALID"


def normalise_code(text: str) -> str | None:
    """``' 7k3m-q9xd '`` → ``'7K3MQ9XD'``; ``'7K3M-Q9XO'`` → ``'7K3MQ9X0'``; None if no code."""
    compact = "".join(ch for ch in text if ch not in _IGNORED).upper().translate(_READ_AS)
    if len(compact) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in compact):
        return None
    return compact


def format_code(code: str) -> str:
    """``'7K3MQ9XD'`` → ``'7K3M-Q9XD'``, as people see it."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def code_guess_key(client_address: str) -> ThrottleKey:
    """The throttle key of one client address's code guesses; apart from its logins'."""
    digest = hashlib.sha256(f"connect-code\0{client_address}".encode()).hexdigest()
    return ThrottleKey(digest, CODE_POLICY)


def _digest_code(code: str) -> str:
    # Codes and tokens share the unique token_hash column; a code never looks like a
    # token (no crms_ prefix), so the two cannot collide.
    return digest_token(code)


def _forget_codes(session: Session, user: User, now: datetime) -> None:
    """Delete every expired code, and the user's oldest live ones beyond the allowance."""
    session.execute(
        delete(ApiToken)
        .where(ApiToken.kind == TokenKind.CONNECT_CODE, ApiToken.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    live = session.scalars(
        select(ApiToken.id)
        .where(ApiToken.user_id == user.id, ApiToken.kind == TokenKind.CONNECT_CODE)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    ).all()
    surplus = live[LIVE_CODES_PER_USER - 1 :]
    if surplus:
        session.execute(
            delete(ApiToken)
            .where(ApiToken.id.in_(surplus))
            .execution_options(synchronize_session=False)
        )


def issue_connect_code(
    session: Session, user: User, now: datetime | None = None
) -> tuple[str, datetime]:
    """A new one-time code for ``user``: ``('7K3M-Q9XD', expires_at)``. Show it once."""
    now = now or utcnow()
    _forget_codes(session, user, now)
    expires_at = now + CODE_LIFETIME
    for _ in range(5):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        try:
            # A savepoint: another live code with the same value (one chance in 2**40
            # per live code) fails only this insert, and a new code is drawn.
            with session.begin_nested():
                session.add(
                    ApiToken(
                        user_id=user.id,
                        name="connect code",
                        kind=TokenKind.CONNECT_CODE,
                        token_hash=_digest_code(code),
                        prefix="",
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError:
            continue
        return format_code(code), expires_at
    raise RuntimeError("could not draw a free connect code")  # pragma: no cover


def exchange_connect_code(
    session: Session,
    code: str,
    name: str,
    *,
    lifetime: timedelta = PANEL_TOKEN_LIFETIME,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Use up ``code``; returns a new panel token of its user (the row and the clear token).

    Raises ConnectCodeInvalid for a code that is malformed, unknown, used or expired, or
    whose user is no longer active. The caller throttles before calling.
    """
    now = now or utcnow()
    compact = normalise_code(code)
    if compact is None:
        raise ConnectCodeInvalid("Unknown, used or expired connect code: ask for a new one")
    # One statement finds and deletes the code: of two requests racing with the same code,
    # the second finds it gone. RETURNING works on PostgreSQL and SQLite ≥ 3.35.
    used = session.execute(
        delete(ApiToken)
        .where(
            ApiToken.token_hash == _digest_code(compact),
            ApiToken.kind == TokenKind.CONNECT_CODE,
        )
        .returning(ApiToken.user_id, ApiToken.expires_at)
        .execution_options(synchronize_session=False)
    ).first()
    user = session.get(User, used.user_id) if used is not None else None
    if (
        used is None
        or used.expires_at is None
        or used.expires_at <= now
        or user is None
        or not user.is_active
    ):
        # Raising rolls the delete back; an expired code goes with the next sweep.
        raise ConnectCodeInvalid("Unknown, used or expired connect code: ask for a new one")
    return issue_token(session, user, name, kind=TokenKind.PANEL, lifetime=lifetime)


def refund_guess(session: Session, key: ThrottleKey) -> None:
    """A right code gives its address's charge back: connecting is not guessing.

    Only this attempt's charge: the address keeps its other failures, so a right code
    of one's own does not wipe out a guessing run from the same address.
    """
    row = session.get(LoginThrottle, key.digest, with_for_update=True)
    if row is not None and row.failures > 0:
        row.failures -= 1


def revoke_panel_token(session: Session, token: str) -> None:
    """The panel disconnects: its own token is revoked. Other kinds are Forbidden here."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest_token(token)))
    if row is None or row.kind is not TokenKind.PANEL:
        raise Forbidden(
            "Only a panel token disconnects itself; revoke other tokens with "
            "DELETE /api/v1/tokens/{id}"
        )
    row.revoked = True
