"""Reading a selected IMAP folder: UID listings, message metadata, raw messages, search.

What it is for: the incoming engine lists UIDs after its cursor (``uids_after``), decides
from ``fetch_meta`` (size, flags, date, Message-ID, MODSEQ) what to download, and streams
the exact bytes with ``fetch_raw``. ``search_message_id`` finds a sent copy by its
Message-ID. Commands are batched so no command line or answer grows without bound:
``META_BATCH`` UIDs per metadata FETCH, about ``RAW_BATCH_BYTES`` per body FETCH.

What it must never do: change a message — bodies are fetched with ``BODY.PEEK[]``, which
unlike ``BODY[]`` does not set ``\\Seen`` (RFC 3501 §6.4.5) — download a message larger
than the caller's cap, or return UIDs as anything but ints.

Facts relied on:
- ``UID SEARCH UID n:*`` always matches the highest UID in the folder, even when it is
  below n, because ``*`` means "the largest UID in use" and ``n:*`` is the same as
  ``*:n`` (RFC 3501 §6.4.8, §9). ``uids_after`` therefore filters the answer.
- ``RFC822.SIZE`` is the exact length of ``BODY[]`` (RFC 3501 §2.3.4), so batches can be
  sized before anything is downloaded and the cap is applied without downloading.
- A command sees the folder as the previous command left it (Dovecot announces new mail
  after the command that noticed it), so the listings send NOOP first.
- Messages expunged by another session between two commands are simply missing from
  FETCH answers; they are left out here, not reported as errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from crmsync.connectors.base import MessageMeta, RawMessage
from crmsync.connectors.imap_parse import (
    batched,
    batches_by_size,
    message_id_from_header,
    meta_from_fetch,
    normalise_message_id,
)
from crmsync.connectors.imap_session import ImapSession

logger = logging.getLogger(__name__)

META_BATCH = 500  # UIDs per metadata FETCH (a command line well under 8 KiB)
RAW_BATCH_BYTES = 8 * 1024 * 1024  # octets of message bodies per FETCH, roughly
META_ITEMS = (
    "UID",
    "RFC822.SIZE",
    "FLAGS",
    "INTERNALDATE",
    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]",
)
MESSAGE_ID_ITEM = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"


def _wanted(uids: Iterable[int]) -> list[int]:
    return sorted({int(uid) for uid in uids if int(uid) > 0})


class ImapReading(ImapSession):
    """UID listings, FETCH of metadata and bodies, and Message-ID search."""

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, ascending: ``uids_after(300)`` → ``[301, 305]``.

        ``UID SEARCH UID 301:*`` answers ``[300]`` when 300 is the highest UID (see the
        module docstring); that answer is filtered out, so the result is ``[]``.
        """
        start = max(last_uid, 0) + 1
        self._refresh()
        with self._guard():
            found = self._client.search(["UID", f"{start}:*"])
        return sorted({int(uid) for uid in found if int(uid) > last_uid})

    def all_uids(self) -> list[int]:
        """Every UID in the selected folder, ascending (``UID SEARCH ALL``)."""
        self._refresh()
        with self._guard():
            found = self._client.search(["ALL"])
        return sorted({int(uid) for uid in found})

    def fetch_meta(self, uids: Iterable[int]) -> list[MessageMeta]:
        """``[MessageMeta(uid=7, size=2048, flags=frozenset({"\\\\Seen"}), ...), ...]``.

        Ascending by UID; ``modseq`` only with CONDSTORE; expunged UIDs are left out.
        """
        items = [*META_ITEMS, "MODSEQ"] if self.supports_condstore else list(META_ITEMS)
        found: list[MessageMeta] = []
        for batch in batched(_wanted(uids), META_BATCH):
            with self._guard():
                response = self._client.fetch(batch, items)
            for uid in batch:
                meta = meta_from_fetch(uid, response[uid]) if uid in response else None
                if meta is not None:
                    found.append(meta)
        return found

    def _sizes(self, uids: list[int]) -> list[tuple[int, int]]:
        sizes: list[tuple[int, int]] = []
        for batch in batched(uids, META_BATCH):
            with self._guard():
                response = self._client.fetch(batch, ["RFC822.SIZE"])
            for uid in batch:
                size = response.get(uid, {}).get(b"RFC822.SIZE")
                if isinstance(size, int):
                    sizes.append((uid, size))
        return sizes

    def fetch_raw(self, uids: Iterable[int], *, max_size: int | None) -> Iterator[RawMessage]:
        """Yield ``RawMessage(uid, raw, size, too_large)`` ascending by UID.

        Sizes are read first; a message over ``max_size`` is never downloaded
        (``RawMessage(uid=9, raw=None, size=31457280, too_large=True)``); the rest come in
        FETCHes of about ``RAW_BATCH_BYTES``. Consume the iterator before sending another
        command on this connection.
        """
        sizes = self._sizes(_wanted(uids))
        over = [(u, s) for u, s in sizes if max_size is not None and s > max_size]
        fits = [(u, s) for u, s in sizes if max_size is None or s <= max_size]
        pending = iter(over)
        waiting = next(pending, None)
        for batch in batches_by_size(fits, RAW_BATCH_BYTES):
            with self._guard():
                response = self._client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                while waiting is not None and waiting[0] < uid:
                    yield RawMessage(waiting[0], None, waiting[1], too_large=True)
                    waiting = next(pending, None)
                raw = response.get(uid, {}).get(b"BODY[]")
                if isinstance(raw, bytes):
                    yield RawMessage(uid, raw, len(raw))
                else:
                    logger.debug("IMAP %s: UID %d has no body (expunged?)", self.where, uid)
        while waiting is not None:
            yield RawMessage(waiting[0], None, waiting[1], too_large=True)
            waiting = next(pending, None)

    def search_message_id(self, message_id: str) -> list[int]:
        """UIDs whose Message-ID is exactly ``message_id``: ``"<a@b>"`` → ``[12]``.

        ``SEARCH HEADER`` matches substrings (RFC 3501 §6.4.4), so each hit's header is
        fetched and compared before it is returned.
        """
        wanted = normalise_message_id(message_id)
        if any(c in wanted for c in "\r\n\0"):
            return []
        with self._guard():
            hits = self._client.search(["HEADER", "Message-ID", wanted])
            response = self._client.fetch(_wanted(hits), [MESSAGE_ID_ITEM]) if hits else {}
        found = []
        for uid, item in response.items():
            block = next((v for k, v in item.items() if k.upper().startswith(b"BODY[")), None)
            header = message_id_from_header(block if isinstance(block, bytes) else None)
            if header is not None and header == wanted:
                found.append(int(uid))
        return sorted(found)
