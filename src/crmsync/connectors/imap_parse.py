"""Pure IMAP parsing and shaping for the connector: byte strings in, typed values out.

What it is for: everything the IMAP connector would otherwise do inline with regular
expressions and dict lookups — UID sets, the Message-ID header block, FETCH items,
APPENDUID, VANISHED, lines seen while IDLE, the choice of a Sent folder, batches — lives
here as small functions tested with byte literals (tests/unit/connectors/
test_imap_parsing.py). imapclient parses the general response grammar; this module
only reads the pieces it leaves as bytes.

What it must never do: I/O, raise anything but ``ValueError`` on malformed input (the
connector maps that to PROTOCOL_ERROR), or guess: unknown input gives None or is skipped.

Facts relied on:
- UID sets are ``n``, ``n:m`` (either order), comma-separated (RFC 3501 §9 sequence-set).
- ``* VANISHED (EARLIER) 41,43:116`` answers SELECT QRESYNC and UID FETCH ... VANISHED;
  ``* VANISHED 5`` replaces ``* 5 EXPUNGE`` once QRESYNC is enabled (RFC 7162 §3.2.10).
- ``[APPENDUID <uidvalidity> <uid>]`` ends a successful APPEND with UIDPLUS (RFC 4315).
- During IDLE, EXISTS, EXPUNGE, FETCH and VANISHED announce changes (RFC 2177); OK lines
  ("Still here", ``[HIGHESTMODSEQ n]``) and RECENT do not; BYE means the server is leaving.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from crmsync.connectors.base import FolderStatus, MessageMeta

MAX_EXPANDED_UIDS = 5_000_000  # a VANISHED set larger than this is not trusted
RECENT = "\\RECENT"
SENT = "\\SENT"
# Names tried, case-insensitively, after the personal namespace prefix, when no folder
# carries the SPECIAL-USE \Sent attribute. Order matters: the first match wins.
SENT_NAMES: tuple[str, ...] = ("Sent", "Sent Items", "Sent Messages", "Sent Mail")
# Full names some servers use regardless of the namespace they report.
SENT_FULL_NAMES: tuple[str, ...] = ("INBOX.Sent", "INBOX/Sent", "INBOX.Sent Items")

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_UNTAGGED = re.compile(rb"^\* (?:(\d+) )?([A-Za-z-]+)")
_EARLIER = re.compile(rb"^\s*\(EARLIER\)\s*", re.IGNORECASE)


# -- UID sets -----------------------------------------------------------------------------
def uid_set(uids: Iterable[int]) -> str:
    """Compress UIDs into an IMAP sequence set: ``[1, 2, 3, 7, 9, 10]`` → ``"1:3,7,9:10"``."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        parts.append(str(start) if start == end else f"{start}:{end}")
        index += 1
    return ",".join(parts)


def parse_uid_set(text: bytes | str, *, limit: int = MAX_EXPANDED_UIDS) -> list[int]:
    """Expand ``b"41,43:45"`` → ``[41, 43, 44, 45]`` (ascending, unique).

    Raises ValueError for ``*``, non-numbers, or more than ``limit`` UIDs.
    """
    raw = text.decode("ascii") if isinstance(text, bytes) else text
    found: set[int] = set()
    for part in raw.strip().split(","):
        if not part:
            continue
        low_text, _, high_text = part.partition(":")
        low = int(low_text)
        high = int(high_text) if high_text else low
        low, high = min(low, high), max(low, high)
        if low < 1 or len(found) + (high - low + 1) > limit:
            raise ValueError(f"unusable UID set part {part!r}")
        found.update(range(low, high + 1))
    return sorted(found)


def batched(items: Sequence[int], size: int) -> Iterator[list[int]]:
    """``batched([1, 2, 3], 2)`` → ``[1, 2]``, ``[3]``."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def batches_by_size(sizes: Sequence[tuple[int, int]], limit: int) -> Iterator[list[int]]:
    """Group ``(uid, size)`` pairs, in order, into UID lists of at most ``limit`` octets.

    A message larger than ``limit`` forms a batch of its own.
    ``batches_by_size([(1, 5), (2, 5), (3, 20)], 10)`` → ``[1, 2]``, ``[3]``.
    """
    batch: list[int] = []
    total = 0
    for uid, size in sizes:
        if batch and total + size > limit:
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


# -- FETCH items ------------------------------------------------------------------------
def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _int(value: object) -> int | None:
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, bytes | str) and value.strip().isdigit():
        return int(value)
    return None


def message_id_from_header(block: bytes | None) -> str | None:
    """The first Message-ID in a header block, as sent (brackets kept), or None.

    ``b"Message-ID:\\r\\n <a@b>\\r\\n\\r\\n"`` → ``"<a@b>"`` (folded lines are unfolded).
    """
    if not block:
        return None
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", block)
    for line in unfolded.splitlines():
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"message-id":
            text = value.decode("utf-8", "replace").strip()
            match = re.search(r"<[^<>\s]+>", text)
            if match:
                return match.group(0)
            return text.split()[0] if text.split() else None
    return None


def normalise_message_id(message_id: str) -> str:
    """``"a@b"`` → ``"<a@b>"``; surrounding whitespace dropped; brackets kept if present."""
    value = message_id.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    return value


def _header_block(item: Mapping[bytes, object]) -> bytes | None:
    for key, value in item.items():
        if key.upper().startswith(b"BODY[HEADER.FIELDS") and isinstance(value, bytes):
            return value
    return None


def meta_from_fetch(uid: int, item: Mapping[bytes, object]) -> MessageMeta | None:
    """A ``MessageMeta`` from one imapclient FETCH item; None when RFC822.SIZE is missing.

    ``item`` is like ``{b"RFC822.SIZE": 303, b"FLAGS": (b"\\\\Seen",), b"MODSEQ": (4,),
    b"INTERNALDATE": datetime(...), b"BODY[HEADER.FIELDS (MESSAGE-ID)]": b"..."}``.
    """
    size = _int(item.get(b"RFC822.SIZE"))
    if size is None:
        return None
    raw_flags = item.get(b"FLAGS", ())
    flags = frozenset(
        _text(flag)
        for flag in (raw_flags if isinstance(raw_flags, tuple | list) else ())
        if _text(flag).upper() != RECENT
    )
    date = item.get(b"INTERNALDATE")
    return MessageMeta(
        uid=uid,
        size=size,
        flags=flags,
        internaldate=date if isinstance(date, datetime) else None,
        message_id=message_id_from_header(_header_block(item)),
        modseq=_int(item.get(b"MODSEQ")),
    )


def changes_from_fetch(parsed: Mapping[int, Mapping[bytes, object]]) -> list[tuple[int, int]]:
    """``[(uid, modseq), ...]`` ascending from parsed FETCH responses carrying UID and MODSEQ.

    Unsolicited FETCHes without UID or MODSEQ are skipped; a UID seen twice keeps the
    higher MODSEQ.
    """
    found: dict[int, int] = {}
    for item in parsed.values():
        uid, modseq = _int(item.get(b"UID")), _int(item.get(b"MODSEQ"))
        if uid is not None and modseq is not None:
            found[uid] = max(modseq, found.get(uid, 0))
    return sorted(found.items())


def vanished_uids(data: Iterable[object]) -> list[int]:
    """UIDs in imaplib's untagged VANISHED data.

    ``[b"(EARLIER) 41,43:44", b"50"]`` → ``[41, 43, 44, 50]``
    """
    found: set[int] = set()
    for entry in data:
        if not isinstance(entry, bytes):
            continue
        found.update(parse_uid_set(_EARLIER.sub(b"", entry).strip()))
    return sorted(found)


def appended_uid(response: object) -> int | None:
    """The UID in ``b"[APPENDUID 1795600688 12] Append completed."``, or None."""
    if not isinstance(response, bytes):
        return None
    match = _APPENDUID.search(response)
    return int(match.group(2)) if match else None


def status_number(value: object) -> int | None:
    """A number from SELECT/STATUS data: ``b"4"``, ``4``, ``[b"4"]`` → 4; else None."""
    return _int(value)


def highest_uid(parsed: Mapping[int, Mapping[bytes, object]]) -> int | None:
    """The largest UID in parsed FETCH responses (``UID FETCH * (UID)``), or None.

    ``{3: {b"UID": 41, b"SEQ": 3}}`` → ``41``; ``{}`` → None.
    """
    uids = [uid for item in parsed.values() if (uid := _int(item.get(b"UID"))) is not None]
    return max(uids, default=None)


def folder_status(values: Mapping[str, object]) -> FolderStatus:
    """A ``FolderStatus`` from SELECT data keyed by upper-case name; KeyError/ValueError if
    UIDVALIDITY, UIDNEXT or EXISTS is missing or not a number."""
    uidvalidity, uidnext, exists = (
        _int(values[key]) for key in ("UIDVALIDITY", "UIDNEXT", "EXISTS")
    )
    if uidvalidity is None or uidnext is None or exists is None:
        raise ValueError("UIDVALIDITY, UIDNEXT and EXISTS must be numbers")
    return FolderStatus(
        uidvalidity=uidvalidity,
        uidnext=uidnext,
        exists=exists,
        highestmodseq=_int(values.get("HIGHESTMODSEQ")),
    )


def untagged_status(untagged: Mapping[str, list[object]]) -> dict[str, object]:
    """imaplib's ``untagged_responses`` reduced to the last value per upper-case key.

    ``{"EXISTS": [b"3", b"2"], "UIDNEXT": [b"4"]}`` → ``{"EXISTS": b"2", "UIDNEXT": b"4"}``
    """
    return {key.upper(): values[-1] for key, values in untagged.items() if values}


# -- IDLE -------------------------------------------------------------------------------
class IdleEvent(enum.Enum):
    CHANGE = "change"  # EXISTS, EXPUNGE, FETCH, VANISHED
    BYE = "bye"  # the server is closing the connection
    OTHER = "other"  # OK/RECENT/continuation: nothing to do


CHANGE_RESPONSES = frozenset({b"EXISTS", b"EXPUNGE", b"FETCH", b"VANISHED"})


def idle_event(line: bytes | None) -> IdleEvent:
    """Classify one server line read while IDLE.

    ``b"* 4 EXISTS"`` → CHANGE, ``b"* VANISHED 3"`` → CHANGE, ``b"* BYE bye"`` → BYE,
    ``b"* OK Still here"`` → OTHER, ``None`` (a continuation) → OTHER.
    """
    if not line:
        return IdleEvent.OTHER
    match = _UNTAGGED.match(line)
    if match is None:
        return IdleEvent.OTHER
    name = match.group(2).upper()
    if name == b"BYE":
        return IdleEvent.BYE
    return IdleEvent.CHANGE if name in CHANGE_RESPONSES else IdleEvent.OTHER


# -- folders ----------------------------------------------------------------------------
Listing = Sequence[tuple[Sequence[bytes | str], object, str]]


def choose_sent_folder(listing: Listing, prefix: str = "") -> str | None:
    """The Sent folder in a LIST result ``[(flags, delimiter, name), ...]``, or None.

    A ``\\Sent`` attribute (RFC 6154) wins; then ``prefix`` + a usual name
    (``SENT_NAMES``), then a usual full name (``SENT_FULL_NAMES``), case-insensitively.
    """
    for flags, _delimiter, name in listing:
        if any(_text(flag).upper() == SENT for flag in flags):
            return name
    by_lower = {name.lower(): name for _flags, _delimiter, name in listing}
    candidates = [prefix + name for name in SENT_NAMES] + list(SENT_FULL_NAMES)
    for candidate in candidates:
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    return None
