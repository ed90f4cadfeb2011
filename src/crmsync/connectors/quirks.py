"""What each IMAP server does differently from the letter of the RFCs, kept as data.

What it is for: one table (after python-caldav's ``compatibility_hints.py``) that says, per
known server, which optional parts of IMAP4rev1/IMAP4rev2 it leaves out and which
advertised capabilities must not be used. ``ImapConnection`` looks its entry up from the
server greeting once connected (``quirks_for``) and lets it choose the fallbacks; the
in-memory mail source of the engine tests models the same flags. Capabilities themselves
are always read from the server (``ImapSession.capabilities``): a row here only narrows
what the server claims, it never adds to it.

What it must never do: do I/O, import anything of crmsync, or hold a flag no code reads —
a quirk that nothing acts on is folklore, not data. A server missing from the table gets
``GENERIC``, which assumes nothing beyond what RFC 3501 requires, so an untuned server
works (more slowly, by asking again) rather than failing.

Protocol facts behind the flags:
- RFC 3501 §6.3.1 / RFC 9051 §6.3.2: SELECT's ``[UIDNEXT n]``, ``[UIDVALIDITY n]``,
  ``[PERMANENTFLAGS ...]`` and ``[UNSEEN n]`` are response codes of untagged OK lines;
  RFC 3501 adds of a missing UIDNEXT that "the client can not make any assumptions", and
  of a missing UIDVALIDITY that UIDs are not persistent. ``[HIGHESTMODSEQ n]`` (RFC 7162
  §3.1.2.1) comes only with CONDSTORE and may be ``[NOMODSEQ]`` instead.
- STATUS (RFC 3501 §6.3.10) reports UIDNEXT and UIDVALIDITY on request; a server that
  leaves them out of SELECT usually has them in STATUS, but not always.
- ``UID FETCH * (UID)`` names the highest UID in the folder; UIDNEXT is at least one more
  (an empty folder answers nothing: its UIDNEXT is then taken as 1, which makes the
  incoming engine list the folder from its start, never skip a message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImapQuirks:
    """One server's departures from the RFCs, as the connector acts on them.

    ``select_reports_uidnext``  False: SELECT is known to leave out ``[UIDNEXT n]``, so
                                the connector asks for it right away without looking
                                for it (and without logging its absence as a surprise).
    ``status_reports_uidnext``  False: STATUS is known not to answer UIDNEXT either, so
                                the connector goes straight to ``UID FETCH * (UID)``.
    ``ignore_capabilities``     Advertised but broken: treated as absent, never ENABLEd
                                nor used (``ImapConnection(ignore_capabilities=...)``).
    """

    name: str
    greeting: re.Pattern[str] | None = None
    select_reports_uidnext: bool = True
    status_reports_uidnext: bool = True
    ignore_capabilities: frozenset[str] = field(default_factory=frozenset)


# A server nobody tuned for: every optional response code is looked for and, when
# missing, asked for again (STATUS, then UID FETCH *).
GENERIC = ImapQuirks(name="generic")
# Dovecot 2.3: reports every SELECT code, CONDSTORE/QRESYNC/IDLE/MOVE as advertised.
DOVECOT = ImapQuirks(name="dovecot", greeting=re.compile(r"\bDovecot\b", re.IGNORECASE))
# The least RFC 3501 allows: no optional SELECT code at all, STATUS without UIDNEXT, none
# of the extensions. Never recognised by a greeting (no product announces itself so);
# chosen explicitly by tests and modelled by the in-memory mail source.
MINIMAL = ImapQuirks(
    name="minimal",
    select_reports_uidnext=False,
    status_reports_uidnext=False,
    ignore_capabilities=frozenset({"CONDSTORE", "QRESYNC", "IDLE", "MOVE", "UIDPLUS"}),
)

KNOWN: tuple[ImapQuirks, ...] = (DOVECOT,)
BY_NAME: dict[str, ImapQuirks] = {q.name: q for q in (GENERIC, DOVECOT, MINIMAL)}


def quirks_for(greeting: bytes | str | None) -> ImapQuirks:
    """The entry whose greeting pattern matches the server's greeting, else ``GENERIC``.

    ``quirks_for(b"* OK [CAPABILITY IMAP4rev1 ...] Dovecot ready.")`` → ``DOVECOT``;
    ``quirks_for(b"* OK IMAP4rev1 server ready")`` → ``GENERIC``.
    """
    if greeting is None:
        return GENERIC
    text = greeting.decode("utf-8", "replace") if isinstance(greeting, bytes) else greeting
    for quirks in KNOWN:
        if quirks.greeting is not None and quirks.greeting.search(text):
            return quirks
    return GENERIC
