"""Email addresses as lookup keys: one normal form, no database.

Every layer compares addresses through ``normalise_address`` (crm/ indexes them, tracking/
matches parties and filters), so an address typed on a record and the same address in a
header meet: case-folded local part, IDNA (UTS #46) domain, so ``Ann@Bücher.Example`` and
``ann@xn--bcher-kva.example`` are one key. Local parts are case-sensitive by RFC 5321, but
no real mail system treats them so, and a CRM that told ``Ann@`` from ``ann@`` would lose
customer email. Pure: no I/O, no ORM.
"""

from __future__ import annotations

import functools

import idna


@functools.lru_cache(maxsize=65536)
def normalise_address(address: str) -> str | None:
    """``' Ann@Bücher.Example '`` → ``'ann@xn--bcher-kva.example'``; None if not an address.

    Cached: ingest normalises the same few thousand addresses over and over, and IDNA
    processing is the costly part.
    """
    candidate = address.strip().strip("<>").strip()
    local, at, domain = candidate.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in candidate):
        return None
    domain = domain.rstrip(".")
    if domain.isascii():
        # IDNA maps an ASCII domain to its lower case; skip the costly UTS #46 pass.
        ascii_domain = domain
    else:
        try:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            # Not a valid IDN: fall back to case-folding, still a stable lookup key.
            ascii_domain = domain.casefold()
    return f"{local.casefold()}@{ascii_domain.lower()}"
