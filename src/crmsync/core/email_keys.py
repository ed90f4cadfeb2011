"""A message's key in ``email_keys``: what makes "one message, one email" a constraint.

The key is the Message-ID (RFC 5322 3.6.4), else a digest of the raw bytes; a message
reusing a tracked email's Message-ID with other content (crmsync.core.fingerprints) is
keyed by ``collision_key`` instead. crm/ writes and looks up keys; tracking/ decides which
key a message has. Both make them here, so they always agree.

Pure: string functions, no I/O.
"""

from __future__ import annotations

import hashlib

__all__ = ["collision_key", "dedupe_key_of"]


def dedupe_key_of(message_id: str | None, raw_sha256: str | None) -> str | None:
    """A message's key in ``email_keys``: its Message-ID, else a digest of its bytes.

    Each recipient's copy differs in its trace headers, so the raw digest only serves
    messages without a Message-ID (rare, and then per copy). None when there is neither.
    """
    if message_id:
        return message_id
    return f"sha256:{raw_sha256}" if raw_sha256 else None


def collision_key(message_id: str, content_fingerprint: str) -> str:
    """The key of a message that reuses ``message_id`` with other content.

    Digested so that it fits the key column whatever the Message-ID's length; the same
    for every copy of that message, so its copies in other mailboxes still fold.
    """
    digest = hashlib.sha256(f"{message_id}\n{content_fingerprint}".encode()).hexdigest()
    return f"collision:{digest}"
