"""Comparing two content fingerprints: the same message, or only the same Message-ID?

A fingerprint (made by crmsync.tracking.fingerprint) is ``'<version>:<hex digest>'``.
crm/ compares the one it stored with a newcomer's when another worker stored the
Message-ID first; tracking/ compares them when it decides. Both ask here, so the two can
never disagree.

Pure: compares strings, never computes a fingerprint (that needs the parsed message).
"""

from __future__ import annotations

__all__ = ["same_content"]


def same_content(stored: str | None, fresh: str | None) -> bool:
    """False only when both fingerprints are known, of one version, and differ.

    An unknown fingerprint (an email stored before they existed, or one of another
    version) cannot tell two messages apart, so the Message-ID match stands.

    >>> same_content("v1:aa", "v1:bb"), same_content(None, "v1:bb"), same_content("v0:aa", "v1:bb")
    (False, True, True)
    """
    if stored is None or fresh is None or stored == fresh:
        return True
    return stored.partition(":")[0] != fresh.partition(":")[0]
