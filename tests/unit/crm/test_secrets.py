"""Credentials at rest: encrypted, rotatable, never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select, text

from crmsync.config import Settings
from crmsync.core.types import CredentialScope, ServerType
from crmsync.crm import profiles
from crmsync.crm.models import EmailServerProfile
from crmsync.crm.secrets import SecretBox, SecretKeyError, rotate_all
from tests.conftest import Org

KEY = SecretBox.generate_key()


@given(clear=st.text(min_size=1, max_size=200))
def test_round_trip_and_ciphertext_never_contains_the_secret(clear: str) -> None:
    box = SecretBox([KEY])
    ciphertext = box.encrypt(clear)
    assert box.decrypt(ciphertext) == clear
    assert clear not in ciphertext or len(clear) < 4


def test_a_wrong_key_is_a_clear_error_without_the_secret() -> None:
    ciphertext = SecretBox([KEY]).encrypt("hunter2")
    with pytest.raises(SecretKeyError) as raised:
        SecretBox([SecretBox.generate_key()]).decrypt(ciphertext, what="the mailbox password")
    assert "the mailbox password" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    with pytest.raises(SecretKeyError):
        SecretBox(["not a key"])
    assert KEY not in repr(SecretBox([KEY]))


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = SecretBox.from_settings(settings).encrypt("x")
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert SecretBox.from_settings(settings).decrypt(first) == "x"
    from_env = Settings(
        data_dir=tmp_path, secret_key=SecretStr(f"{KEY}, {key_file.read_text().strip()}")
    )
    assert SecretBox.from_settings(from_env).decrypt(first) == "x"


def test_rotation_re_encrypts_every_stored_secret(org: Org) -> None:
    old = SecretBox([KEY])
    with org.store.transaction() as session:
        principal = org.principal(session, org.admin_id)
        profiles.create_profile(
            session,
            principal,
            {
                "name": "Dovecot",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "mail.example.test",
                "outgoing_host": "mail.example.test",
                "credential_scope": CredentialScope.PROFILE,
                "username": "master",
                "password": "master-secret",
            },
            old,
        )
        stored = session.execute(
            text("SELECT password_ciphertext FROM email_server_profiles")
        ).scalar()
        assert stored
        assert "master-secret" not in stored
    new_key = SecretBox.generate_key()
    with org.store.transaction() as session:
        assert rotate_all(session, SecretBox([new_key, KEY])) == 1
    with org.store.transaction() as session:
        profile = session.scalars(select(EmailServerProfile)).one()
        assert profile.password_ciphertext is not None
        assert SecretBox([new_key]).decrypt(profile.password_ciphertext) == "master-secret"
        with pytest.raises(SecretKeyError):
            old.decrypt(profile.password_ciphertext)
