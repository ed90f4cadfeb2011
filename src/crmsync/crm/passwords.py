"""Changing a password: by its owner, who proves the current one, or by an administrator.

A password changes in two ways only:

* the user changes their own, giving the current password (a stolen session alone cannot
  lock the owner out); their other login sessions end, the one they used stays;
* an administrator over the user — the user write privilege reaching them, and holding at
  least every privilege they hold — sets a new one; all of that user's sessions end.

API tokens are not sessions and survive a change: their owner lists and revokes them.
Must never log, store or return a password in clear.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from crmsync.core.types import Privilege, TokenKind
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.auth import digest_token, hash_password, verify_password
from crmsync.crm.errors import Forbidden, RuleViolation
from crmsync.crm.models.org import ApiToken, User


def end_sessions(session: Session, user: User, *, keep_token: str | None = None) -> int:
    """Revoke the user's login sessions but ``keep_token``'s; returns how many ended."""
    query = update(ApiToken).where(
        ApiToken.user_id == user.id,
        ApiToken.kind == TokenKind.SESSION,
        ApiToken.revoked.is_(False),
    )
    if keep_token is not None:
        query = query.where(ApiToken.token_hash != digest_token(keep_token))
    query = query.values(revoked=True).execution_options(synchronize_session=False)
    result = session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


def change_own_password(
    session: Session, user: User, *, current: str, new: str, keep_token: str | None
) -> None:
    """The user's own change. ``keep_token`` is the session (or API token) they used."""
    if not verify_password(user.password_hash, current):
        raise RuleViolation(
            "CURRENT_PASSWORD_WRONG", "The current password is not right", field="current_password"
        )
    if current == new:
        raise RuleViolation(
            "PASSWORD_UNCHANGED", "The new password is the current one", field="new_password"
        )
    user.password_hash = hash_password(new)
    end_sessions(session, user, keep_token=keep_token)


def reset_password(session: Session, principal: Principal, user: User, *, new: str | None) -> None:
    """An administrator sets (or, with None, removes) another user's password."""
    if user.id == principal.user_id:
        raise Forbidden(
            "Change your own password with the current one (POST /users/me/password)",
            privilege="write",
        )
    access.require_entry(principal, Privilege.WRITE, user)
    access.require_dominates(principal, access.grants_held(user), "The user")
    user.password_hash = hash_password(new) if new else None
    end_sessions(session, user)
