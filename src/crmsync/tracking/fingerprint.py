"""A message's content fingerprint: is this the same message, or only the same Message-ID?

A Message-ID (RFC 5322 3.6.4) should be unique, but old or broken mailers reuse one for
different messages. The engines treat a Message-ID match as the same message only when
the fingerprints agree too; otherwise the newcomer is a *collision* and becomes its own
email.

The fingerprint is a SHA-256 over what the sender wrote, as the parser decoded it:

- From: every address, lower-cased, sorted (display names left out: they are re-encoded
  freely, RFC 2047, and carry no identity);
- Date: the instant as a UTC Unix timestamp (a server that rewrites ``+0100`` as
  ``Mon, ... +0000`` keeps the instant), or empty without a Date;
- Subject: the decoded text with runs of whitespace folded to one space (header folding
  and RFC 2047 word splitting differ from server to server);
- the text body: decoded (so the transfer encoding and charset do not matter), Unicode
  NFC, line ends as ``\\n``, spaces and tabs at the end of each line and whitespace at
  both ends dropped (quoted-printable re-encoding and 8-bit downgrades touch exactly
  those).

Left out on purpose: the raw bytes and every header a server adds or rewrites on the way
(Received, Return-Path, Delivered-To, DKIM/ARC signatures, X-*), so the two copies of one
message fetched from two colleagues' mailboxes have one fingerprint. Also left out: To/Cc
(Bcc copies differ) and attachments (a gateway may strip them; the body decides).

A stored fingerprint starts with its version (``v1:``); fingerprints of different versions,
or a missing one (emails stored before fingerprints existed), say nothing: the Message-ID
alone decides, as it did before. ``same_content`` (crmsync.core.fingerprints, re-exported
here) is that comparison, shared with crm/.

Pure: no I/O, no clock; never raises for a ``ParsedMessage``. It must never import crm/,
sync/ or connectors/.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC

from crmsync.core.fingerprints import same_content
from crmsync.tracking.parse import ParsedMessage

__all__ = ["VERSION", "fingerprint", "same_content"]

VERSION = "v1"
# Spaces and tabs before a line end: what quoted-printable re-encoding and 8-bit
# downgrades drop or add (RFC 2045 6.7, rule 3).
_TRAILING_BLANKS = re.compile(r"[ \t]+(?=\n)")
_SEPARATOR = "\x1f"  # the ASCII unit separator: never in a decoded header or address


def _addresses(parsed: ParsedMessage) -> str:
    return ",".join(sorted({entry.address.strip().lower() for entry in parsed.from_}))


def _date(parsed: ParsedMessage) -> str:
    if parsed.date is None:
        return ""
    value = parsed.date if parsed.date.tzinfo is not None else parsed.date.replace(tzinfo=UTC)
    return str(int(value.timestamp()))


def _subject(parsed: ParsedMessage) -> str:
    return " ".join(unicodedata.normalize("NFC", parsed.subject).split())


def _body_digest(parsed: ParsedMessage) -> str:
    # Nearly every body is ASCII without trailing blanks: each step below is skipped
    # when it has nothing to do, so a fingerprint costs little more than its SHA-256.
    body = parsed.text_body
    if not body.isascii():
        body = unicodedata.normalize("NFC", body)
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    if " \n" in body or "\t\n" in body:
        body = _TRAILING_BLANKS.sub("", body)
    body = body.strip()
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(parsed: ParsedMessage) -> str:
    """``'v1:'`` and 64 hex digits; equal for two copies of one message however re-encoded.

    >>> fingerprint(ParsedMessage(subject="Hello")).startswith("v1:")
    True
    """
    fields = (_addresses(parsed), _date(parsed), _subject(parsed), _body_digest(parsed))
    digest = hashlib.sha256(_SEPARATOR.join(fields).encode("utf-8", "surrogatepass"))
    return f"{VERSION}:{digest.hexdigest()}"
