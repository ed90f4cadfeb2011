"""Outlook's Thread-Index header: the conversation GUID in it, and new values to send.

Outlook and Exchange thread by ``Thread-Index`` rather than References; when a reply loses
In-Reply-To and the token, the conversation GUID in it still correlates. Format
(MS-OXOMSG 2.2.1.3 PidTagConversationIndex, MS-OXCMSG): base64 of a 22-byte header
block followed by one 5-byte child block per reply or forward::

    header  01 | t1 t2 t3 t4 t5 | g0 … g15         reserved 0x01, time, conversation GUID
    child   D|delta(31 bits) | rnd(8 bits)        D=0: delta = Δ >> 18, D=1: Δ >> 23

Two header variants are in the wild: Exchange 2013+/Outlook on the web/Graph write the
reserved byte then FILETIME >> 24 (5 bytes, as the spec says); classic desktop Outlook
writes FILETIME >> 16 (6 bytes) whose top byte is 0x01 for any date from 1972 to 2057,
so it passes for the reserved byte. The GUID is at bytes 6-21 in both, Data1-Data3
big-endian, i.e. RFC 4122 byte order. FILETIME counts 100 ns ticks since 1601-01-01 UTC.

``conversation_guid`` never raises; it returns None for anything malformed. Generating
writes the spec (modern) header. Pure: the time is passed in, and the 8 "random" bits of
a child block are derived from its inputs, so the same inputs give the same value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

__all__ = ["child_thread_index", "conversation_guid", "new_thread_index"]

HEADER_LENGTH = 22
CHILD_LENGTH = 5
MAX_HEADER_CHARS = 4096  # a few hundred replies; anything longer is not a real index
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_MAX_DELTA = 0x7FFF_FFFF
_LONG_DELTA = 0x8000_0000  # the D bit


def _decode(header_value: str | None) -> bytes | None:
    if not header_value or len(header_value) > MAX_HEADER_CHARS:
        return None
    compact = "".join(header_value.split())
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) < HEADER_LENGTH or (len(data) - HEADER_LENGTH) % CHILD_LENGTH:
        return None
    if data[0] != 0x01 or not any(data[6:HEADER_LENGTH]):
        return None
    return data


def conversation_guid(header_value: str | None) -> str | None:
    """``'AQHYnHLVENTK1UHdsEyeUwZej/8cmg=='`` → ``'10d4cad5-41dd-b04c-9e53-065e8fff1c9a'``.

    The canonical lower-case form of the GUID; None when the value is missing, not
    base64, of the wrong length, without the 0x01 reserved byte, or has an all-zero GUID.
    """
    data = _decode(header_value)
    if data is None:
        return None
    return str(uuid.UUID(bytes=data[6:HEADER_LENGTH]))


def _filetime(moment: datetime) -> int:
    """100 ns ticks since 1601-01-01 UTC; a naive ``moment`` is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _FILETIME_EPOCH
    if delta < timedelta(0):
        raise ValueError("a Thread-Index time cannot be before 1601")
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _header_filetime(data: bytes) -> int:
    """The time of a header block, in either variant (see the module docstring)."""
    if data[1] == 0x01:  # modern: reserved byte, then FILETIME >> 24
        return int.from_bytes(data[1:6], "big") << 24
    return int.from_bytes(data[0:6], "big") << 16  # classic: FILETIME >> 16


def new_thread_index(now: datetime, guid: uuid.UUID) -> str:
    """The Thread-Index of a message that starts a conversation ``guid`` at ``now``."""
    ticks = _filetime(now) >> 24
    header = b"\x01" + (ticks & 0xFF_FFFF_FFFF).to_bytes(5, "big") + guid.bytes
    return base64.b64encode(header).decode("ascii")


def child_thread_index(parent: str, now: datetime) -> str:
    """``parent`` with one child block for a reply or forward made at ``now``.

    Raises ValueError when ``parent`` is not a Thread-Index (start a new one instead).
    """
    data = _decode(parent)
    if data is None:
        raise ValueError("not a Thread-Index value")
    delta = max(0, _filetime(now) - _header_filetime(data))
    short = delta >> 18  # D=0 keeps 31 bits of Δ from bit 18: up to about 1.7 years
    block = short if short <= _MAX_DELTA else _LONG_DELTA | min(delta >> 23, _MAX_DELTA)
    seed = hashlib.blake2b(data + now.isoformat().encode("ascii"), digest_size=1).digest()
    child = block.to_bytes(4, "big") + seed
    return base64.b64encode(data + child).decode("ascii")
