"""Connect codes and panel tokens in the record store: format, lifetime, single use, scope."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from crmsync.core.types import TokenKind
from crmsync.crm import connect, throttle
from crmsync.crm.auth import (
    GENERAL_KINDS,
    PANEL_KINDS,
    TokenOutOfScope,
    authenticate_token,
    digest_token,
    issue_token,
)
from crmsync.crm.db import utcnow
from crmsync.crm.errors import AuthenticationFailed, Forbidden
from crmsync.crm.models.org import ApiToken, User
from tests.conftest import Org

codes = st.text(alphabet=connect.CODE_ALPHABET, min_size=8, max_size=8)


@given(codes)
def test_a_code_reads_back_however_it_is_typed(code: str) -> None:
    shown = connect.format_code(code)
    assert len(shown) == 9
    assert shown[4] == "-"
    assert connect.normalise_code(shown) == code
    typed = f" {shown.lower().replace('0', 'o').replace('1', 'l')} "
    assert connect.normalise_code(typed) == code


@pytest.mark.parametrize(
    "text", ["", "ABCD-EFG", "ABCD-EFGHJ", "ABCU-EFGH", "ABCD_EFGH", "ÄBCD-EFGH"]
)
def test_what_is_no_code(text: str) -> None:
    assert connect.normalise_code(text) is None


def test_the_alphabet_is_crockfords() -> None:
    assert len(set(connect.CODE_ALPHABET)) == 32
    assert not set("ILOU") & set(connect.CODE_ALPHABET)


def _user(org: Org, name: str = "sally") -> User:
    with org.store.transaction() as session:
        user = session.get(User, org.add_user(session, name))
        assert user is not None
        return user


def test_a_code_is_stored_as_a_digest_and_lives_five_minutes(org: Org) -> None:
    user = _user(org)
    now = utcnow()
    with org.store.transaction() as session:
        code, expires_at = connect.issue_connect_code(session, user, now)
        row = session.scalars(select(ApiToken).where(ApiToken.kind == TokenKind.CONNECT_CODE)).one()
        assert expires_at == now + timedelta(minutes=5) == row.expires_at
        compact = code.replace("-", "")
        assert compact not in (row.token_hash, row.prefix, row.name)
        assert row.token_hash == digest_token(compact)
    with pytest.raises(connect.ConnectCodeInvalid), org.store.transaction() as session:
        connect.exchange_connect_code(session, code, "late", now=now + timedelta(minutes=5))
    with org.store.transaction() as session:
        row, clear = connect.exchange_connect_code(
            session, code, "in time", now=now + timedelta(minutes=4)
        )
        assert row.kind is TokenKind.PANEL
        assert row.expires_at is not None
        assert row.expires_at - utcnow() > timedelta(days=89)
    with org.store.transaction() as session:
        assert (
            session.scalar(select(func.count()).where(ApiToken.kind == TokenKind.CONNECT_CODE)) == 0
        )
        assert authenticate_token(session, clear, kinds=PANEL_KINDS).id == user.id


def test_a_user_has_few_live_codes_and_expired_ones_go(org: Org) -> None:
    user = _user(org)
    other = _user(org, "other")
    now = utcnow()
    with org.store.transaction() as session:
        connect.issue_connect_code(session, other, now - timedelta(minutes=6))
        issued = [
            connect.issue_connect_code(session, user, now + timedelta(seconds=n))[0]
            for n in range(5)
        ]
        live = session.scalars(
            select(ApiToken).where(ApiToken.kind == TokenKind.CONNECT_CODE)
        ).all()
        assert len(live) == connect.LIVE_CODES_PER_USER  # the other's expired one is gone
    for code in issued[: -connect.LIVE_CODES_PER_USER]:
        with pytest.raises(connect.ConnectCodeInvalid), org.store.transaction() as session:
            connect.exchange_connect_code(session, code, "panel")
    with org.store.transaction() as session:
        connect.exchange_connect_code(session, issued[-1], "panel")


def test_an_inactive_users_code_is_refused(org: Org) -> None:
    user = _user(org)
    with org.store.transaction() as session:
        code, _ = connect.issue_connect_code(session, user)
        stored = session.get(User, user.id)
        assert stored is not None
        stored.is_active = False
    with pytest.raises(connect.ConnectCodeInvalid), org.store.transaction() as session:
        connect.exchange_connect_code(session, code, "panel")


def test_each_kind_authenticates_where_it_may(org: Org) -> None:
    user = _user(org)
    with org.store.transaction() as session:
        code, _ = connect.issue_connect_code(session, user)
        tokens = {
            kind: issue_token(session, user, kind.value, kind=kind)[1]
            for kind in (TokenKind.API, TokenKind.SESSION, TokenKind.PANEL)
        }
    with org.store.transaction() as session:
        for kind, token in tokens.items():
            assert authenticate_token(session, token, kinds=PANEL_KINDS).id == user.id
            if kind in GENERAL_KINDS:
                assert authenticate_token(session, token).id == user.id
        with pytest.raises(TokenOutOfScope, match="side panel"):
            authenticate_token(session, tokens[TokenKind.PANEL])
        for sent in (code, code.replace("-", "")):
            for kinds in (GENERAL_KINDS, PANEL_KINDS, frozenset(TokenKind)):
                with pytest.raises(AuthenticationFailed) as refused:
                    authenticate_token(session, sent, kinds=kinds)
                assert type(refused.value) is AuthenticationFailed


def test_the_panel_revokes_only_its_own_kind(org: Org) -> None:
    user = _user(org)
    with org.store.transaction() as session:
        _, api = issue_token(session, user, "script")
        _, panel = issue_token(session, user, "panel", kind=TokenKind.PANEL)
    with org.store.transaction() as session:
        with pytest.raises(Forbidden):
            connect.revoke_panel_token(session, api)
        connect.revoke_panel_token(session, panel)
    with pytest.raises(AuthenticationFailed), org.store.transaction() as session:
        authenticate_token(session, panel, kinds=PANEL_KINDS)


def test_code_guesses_are_counted_apart_from_logins() -> None:
    key = connect.code_guess_key("192.0.2.1")
    assert key.digest != throttle.address_key("192.0.2.1").digest
    assert key.digest != connect.code_guess_key("192.0.2.2").digest
    assert "192.0.2.1" not in key.digest
