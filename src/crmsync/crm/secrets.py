"""Credentials at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256), key rotation.

The key comes from ``CRMSYNC_SECRET_KEY`` (a comma-separated list: the first key
encrypts, every key decrypts — how a rotation is rolled out across machines) or, when
unset, from ``<data_dir>/secret.key``, created with mode 0600 on first use.

``rotate_all`` re-encrypts every ``*_ciphertext`` column (models list them in
``__encrypted__``) with the first key; after it, older keys can be dropped.

Must never log, return or put into an exception message a clear-text secret. Decryption
failures say which column could not be read, never what it held.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.config import Settings

KEY_FILE = "secret.key"


class SecretKeyError(Exception):
    """The key is missing, malformed, or does not decrypt a stored secret."""


class SecretBox:
    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured")
        try:
            self._fernets = [Fernet(key) for key in keys]
        except (ValueError, TypeError) as exc:
            raise SecretKeyError(
                "a secret key is not a valid Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc
        self._multi = MultiFernet(self._fernets)

    def __repr__(self) -> str:
        return f"SecretBox({len(self._fernets)} key(s))"

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, clear: str) -> str:
        return self._multi.encrypt(clear.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, *, what: str = "a secret") -> str:
        try:
            return self._multi.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise SecretKeyError(f"{what} cannot be decrypted with the configured key") from exc

    def encrypt_optional(self, clear: str | None) -> str | None:
        return self.encrypt(clear) if clear else None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the first key (decrypting with any)."""
        try:
            return self._multi.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise SecretKeyError("a stored secret cannot be decrypted with any key") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key is not None:
            keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",")]
            return cls([k for k in keys if k])
        return cls(read_or_create_key_file(settings.data_dir / KEY_FILE))


def read_or_create_key_file(path: Path) -> list[str]:
    if path.exists():
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not keys:
            raise SecretKeyError(f"{path} holds no key")
        return keys
    path.parent.mkdir(parents=True, exist_ok=True)
    write_key_file(path, [SecretBox.generate_key()])
    return read_or_create_key_file(path)


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Write keys atomically, readable by the owner only."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _encrypted_models() -> list[Any]:
    from crmsync.crm.models import Base

    return [
        mapper.class_
        for mapper in Base.registry.mappers
        if getattr(mapper.class_, "__encrypted__", None)
    ]


def rotate_all(session: Session, box: SecretBox) -> int:
    """Re-encrypt every stored secret with the box's first key; returns how many."""
    count = 0
    for model in _encrypted_models():
        for row in session.scalars(select(model)):
            for column in model.__encrypted__:
                value = getattr(row, column)
                if value:
                    setattr(row, column, box.rotate(value))
                    count += 1
    session.flush()
    return count
