"""Login throttling: the counts, the backoff and what a success forgives, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from crmsync.crm import throttle
from crmsync.crm.models import LoginThrottle
from crmsync.crm.store import Store

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _charge(store: Store, keys: list[throttle.ThrottleKey], now: datetime) -> None:
    with store.transaction() as session:
        throttle.charge(session, keys, now)


def test_an_account_locks_after_its_free_failures_and_backs_off(store: Store) -> None:
    account = throttle.account_key("Acme", "ann")
    free = throttle.ACCOUNT_POLICY.free_failures
    for _ in range(free):
        _charge(store, [account], T0)
    _charge(store, [account], T0)  # one over: locked for 1 s from now on
    with pytest.raises(throttle.TooManyAttempts) as locked:
        _charge(store, [account], T0)
    assert locked.value.retry_after == 1
    _charge(store, [account], T0 + timedelta(seconds=1))  # two over: 2 s
    with pytest.raises(throttle.TooManyAttempts) as longer:
        _charge(store, [account], T0 + timedelta(seconds=2))
    assert longer.value.retry_after == 1
    # A refused attempt is not counted: waiting out the lock is enough.
    _charge(store, [account], T0 + timedelta(seconds=3))


def test_failures_are_forgotten_an_hour_after_the_last_one(store: Store) -> None:
    account = throttle.account_key(None, "bob")
    for _ in range(throttle.ACCOUNT_POLICY.free_failures + 1):
        _charge(store, [account], T0)
    later = T0 + timedelta(hours=1, seconds=1)
    _charge(store, [account], later)
    with store.transaction() as session:
        row = session.get(LoginThrottle, account.digest)
        assert row is not None
        assert row.failures == 1


def test_a_success_clears_the_account_and_refunds_only_its_own_charge(store: Store) -> None:
    account = throttle.account_key("Acme", "ann")
    address = throttle.address_key("192.0.2.7")
    for _ in range(3):
        _charge(store, [account, address], T0)
    with store.transaction() as session:
        throttle.succeeded(session, account, address)
    with store.transaction() as session:
        assert session.get(LoginThrottle, account.digest) is None
        row = session.get(LoginThrottle, address.digest)
        assert row is not None
        assert row.failures == 2


def test_one_locked_key_refuses_the_attempt_for_all(store: Store) -> None:
    address = throttle.address_key("198.51.100.1")
    for index in range(throttle.ADDRESS_POLICY.free_failures + 1):
        _charge(store, [throttle.account_key("Acme", f"user-{index}"), address], T0)
    with pytest.raises(throttle.TooManyAttempts):
        _charge(store, [throttle.account_key("Acme", "someone-new"), address], T0)


def test_keys_keep_neither_usernames_nor_addresses(store: Store) -> None:
    _charge(store, [throttle.account_key("Acme", "ann"), throttle.address_key("10.1.2.3")], T0)
    with store.transaction() as session:
        stored = " ".join(session.scalars(select(LoginThrottle.key)))
    assert "ann" not in stored
    assert "10.1.2.3" not in stored


def test_old_rows_are_dropped(store: Store) -> None:
    _charge(store, [throttle.account_key("Acme", "ann")], T0)
    with store.transaction() as session:
        assert throttle.forget_old(session, T0 + timedelta(hours=23)) == 0
        assert throttle.forget_old(session, T0 + timedelta(days=1, seconds=1)) == 1


@given(failures=st.integers(min_value=0, max_value=10_000))
def test_the_lock_grows_and_never_passes_the_cap(failures: int) -> None:
    policy = throttle.ACCOUNT_POLICY
    lock = policy.lock_for(failures)
    if failures <= policy.free_failures:
        assert lock is None
        return
    assert lock is not None
    assert timedelta(seconds=policy.base_seconds) <= lock <= timedelta(seconds=policy.cap_seconds)
    following = policy.lock_for(failures + 1)
    assert following is not None
    assert following >= lock
