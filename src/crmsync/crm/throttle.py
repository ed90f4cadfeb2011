"""Throttling password guessing: per account and per client address, with backoff.

Every login attempt is *charged* before the password is checked and *forgiven* (for the
account) when it succeeds, so a burst of concurrent guesses is counted in full instead of
racing the check. After ``free_failures`` failures in a row a key is locked for
``base_seconds * 2**(failures - free_failures - 1)``, capped at ``cap_seconds``; while
locked, every attempt — even with the right password — is refused with Retry-After,
without checking the password at all. Failures are forgotten ``forget_after`` the last one;
``forget_old`` drops rows nobody has added to for a day.

Keys exist for usernames that exist and for those that do not, and are stored as SHA-256
digests, so the table reveals neither which usernames were tried nor who tried them.
Counts live in the database, so every process of an instance sees the same ones.

Must never store a username or an address in clear, and never check a password itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crmsync.crm.errors import CrmError
from crmsync.crm.models.org import LoginThrottle


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int
    base_seconds: float = 1.0
    cap_seconds: float = 15 * 60
    forget_after: timedelta = timedelta(hours=1)

    def lock_for(self, failures: int) -> timedelta | None:
        """``lock_for(6)`` with 5 free failures → 1 s; 7 → 2 s; 8 → 4 s; … capped."""
        over = failures - self.free_failures
        if over <= 0:
            return None
        # The exponent is bounded first: 2**1028 is past what a float holds.
        doubling = 2.0 ** min(over - 1, 64)
        return timedelta(seconds=min(self.cap_seconds, self.base_seconds * doubling))


# An account is one person guessing badly or someone guessing theirs; an address may be a
# whole office behind one NAT, so it gets more room before it slows down.
ACCOUNT_POLICY = ThrottlePolicy(free_failures=5)
ADDRESS_POLICY = ThrottlePolicy(free_failures=30)


class TooManyAttempts(CrmError):
    code = "TOO_MANY_ATTEMPTS"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed logins; try again in {retry_after} seconds",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class ThrottleKey:
    digest: str
    policy: ThrottlePolicy


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def account_key(organisation: str | None, username: str) -> ThrottleKey:
    return ThrottleKey(
        _digest(f"account\0{(organisation or '').casefold()}\0{username.casefold()}"),
        ACCOUNT_POLICY,
    )


def address_key(client_address: str) -> ThrottleKey:
    return ThrottleKey(_digest(f"address\0{client_address}"), ADDRESS_POLICY)


def _row(session: Session, key: ThrottleKey, now: datetime) -> LoginThrottle:
    row = session.scalar(
        select(LoginThrottle).where(LoginThrottle.key == key.digest).with_for_update()
    )
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = LoginThrottle(key=key.digest, failures=0, last_failure_at=now)
            session.add(row)
    except IntegrityError:
        # Another process inserted it first; take theirs, locked.
        row = session.scalars(
            select(LoginThrottle).where(LoginThrottle.key == key.digest).with_for_update()
        ).one()
    return row


def charge(session: Session, keys: list[ThrottleKey], now: datetime) -> None:
    """Count one attempt against every key, or raise TooManyAttempts if one is locked."""
    rows = [(key, _row(session, key, now)) for key in keys]
    locked = [row.locked_until for _, row in rows if row.locked_until and row.locked_until > now]
    if locked:
        wait = max(locked) - now
        raise TooManyAttempts(max(1, int(wait.total_seconds() + 0.999)))
    for key, row in rows:
        if now - row.last_failure_at > key.policy.forget_after:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        lock = key.policy.lock_for(row.failures)
        row.locked_until = now + lock if lock else None
    session.flush()


def succeeded(session: Session, account: ThrottleKey, address: ThrottleKey) -> None:
    """A successful login clears its account's count and refunds its address's charge.

    The address keeps its other failures: one right password must not wipe out a
    guessing run from the same address at other accounts.
    """
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == account.digest))
    row = session.get(LoginThrottle, address.digest, with_for_update=True)
    if row is not None and row.failures > 0:
        row.failures -= 1


def forget_old(session: Session, now: datetime) -> int:
    """Drop counts nobody added to for a day; returns how many went."""
    result = session.execute(
        delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - timedelta(days=1))
    )
    return int(getattr(result, "rowcount", 0) or 0)
