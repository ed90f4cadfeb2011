"""The organisation's settings, read and changed by its administrators.

``OrganisationSettings`` (crm/settings.py) is stored as JSON on the organisation row and
read by the sync engines on every pass; this module is the one way a person changes it
(the API's ``/api/v1/organisation/settings``, the ``/admin/settings`` page, ``crmsync org
settings``). What a change must be, beyond the model's own bounds:

* ``email_domain``: a domain name by IDNA 2008 (UTS #46 mapping), stored as its ASCII
  form in lower case: ``' Bücher.Example. '`` → ``'xn--bcher-kva.example'``. It is the
  right-hand side of every Message-ID crmsync makes (``<crm.3f2a…@acme.example>``).
* ``tracking_token_prefix``: no white space or control characters (tracking/token.py
  refuses them), and not ending in a digit (it would run into the number).
* ``blocked_senders``: each line an address (``ann@example.com``) or a domain
  (``example.com``, ``@example.com``, ``*.example.com``: the domain and its
  subdomains), normalised as the tracker compares them (tracking/filters.py), duplicates
  dropped, at most ``MAX_BLOCKED_SENDERS``.
* ``blocked_attachment_extensions``: ``.EXE`` → ``exe``, duplicates dropped.

Who: reading needs the read privilege on the organisation at organisation depth; changing
it, the write privilege at that depth (the System Administrator role has both). Anyone
else in the organisation is Forbidden: the organisation is no secret to its own people.

Must never store what the model or these rules refuse (nothing changes then: an
``InvalidSetting`` names the field), never drop keys a newer version wrote, and never
touch another organisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import idna
from pydantic import ValidationError
from sqlalchemy.orm import Session

from crmsync.core.addresses import normalise_address
from crmsync.core.types import Depth, Privilege, RecordType
from crmsync.crm.access import Principal
from crmsync.crm.errors import CrmError, Forbidden, NotFound
from crmsync.crm.models.org import Organisation
from crmsync.crm.settings import OrganisationSettings, first_error, read_stored

MAX_DOMAIN_LENGTH = 253
MAX_BLOCKED_SENDERS = 1000
MAX_BLOCKED_SENDER_LENGTH = 320
MAX_EXTENSIONS = 200
MAX_PREFIX_LENGTH = 20

# White space in Python's sense (str.isspace) and JSON Schema's (ECMA-262 \s), and control
# characters: spelt out rather than \s, because the API documents these patterns and the
# two dialects disagree on what \s is (\x1c-\x1f, \x85, \ufeff).
BLANK = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
DOMAIN_PATTERN = rf"^[^{BLANK}@]+$"
PREFIX_PATTERN = rf"^[^{BLANK}]*[^{BLANK}0-9]$"
BLOCKED_SENDER_PATTERN = rf"^[^{BLANK}]+$"
EXTENSION_PATTERN = r"^\.?[A-Za-z0-9][A-Za-z0-9_+-]{0,19}$"

_PREFIX = re.compile(PREFIX_PATTERN)
_EXTENSION = re.compile(EXTENSION_PATTERN)
_BLOCKED_SENDER = re.compile(BLOCKED_SENDER_PATTERN)


class InvalidSetting(CrmError):
    """A value the settings refuse; ``field`` names it (``blocked_senders[2]``)."""

    code = "INVALID_SETTING"
    status = 422


# -- the rules, pure ----------------------------------------------------------------------


def normalise_domain(value: str) -> str:
    """``' Bücher.Example. '`` → ``'xn--bcher-kva.example'``; ValueError if no domain."""
    text = value.strip().removesuffix(".")
    if not text or "@" in text:
        raise ValueError("Enter a domain name, such as example.com")
    try:
        encoded = idna.encode(text, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"Not a domain name: {exc}") from exc
    if len(encoded) > MAX_DOMAIN_LENGTH:
        raise ValueError(f"A domain name has at most {MAX_DOMAIN_LENGTH} characters")
    return encoded


def normalise_blocked_sender(value: str) -> str:
    """An address or a domain as the tracker compares it.

    ``'Ann@Bücher.Example'`` → ``'ann@xn--bcher-kva.example'``; ``'*.Example.COM'`` and
    ``'@example.com'`` → ``'example.com'`` (the domain and all its subdomains).
    """
    text = value.strip()
    if not text or not _BLOCKED_SENDER.fullmatch(text):
        raise ValueError("Enter an address or a domain, without spaces")
    domain_only = text.removeprefix("*.").removeprefix("@")
    if "@" not in domain_only:
        return normalise_domain(domain_only)
    address = normalise_address(text)
    if address is None:
        raise ValueError("Not an email address")
    return address


def normalise_blocked_senders(values: Iterable[str]) -> list[str]:
    """Normalised, blank lines and duplicates dropped, first occurrence's order kept."""
    kept: dict[str, None] = {}
    for index, value in enumerate(values):
        if not value.strip():
            continue
        try:
            kept[normalise_blocked_sender(value)] = None
        except ValueError as exc:
            raise InvalidSetting(
                f"{value.strip()!r}: {exc}", field=f"blocked_senders[{index}]"
            ) from exc
    if len(kept) > MAX_BLOCKED_SENDERS:
        raise InvalidSetting(
            f"At most {MAX_BLOCKED_SENDERS} blocked senders", field="blocked_senders"
        )
    return list(kept)


def normalise_extensions(values: Iterable[str]) -> list[str]:
    """``['.EXE', 'exe', 'js']`` → ``['exe', 'js']``."""
    kept: dict[str, None] = {}
    for index, value in enumerate(values):
        text = value.strip()
        if not text:
            continue
        if not _EXTENSION.fullmatch(text):
            raise InvalidSetting(
                f"{text!r} is not a file extension such as exe or .exe",
                field=f"blocked_attachment_extensions[{index}]",
            )
        kept[text.removeprefix(".").lower()] = None
    if len(kept) > MAX_EXTENSIONS:
        raise InvalidSetting(
            f"At most {MAX_EXTENSIONS} extensions", field="blocked_attachment_extensions"
        )
    return list(kept)


def check_prefix(value: str) -> str:
    if len(value) > MAX_PREFIX_LENGTH or not _PREFIX.fullmatch(value):
        raise InvalidSetting(
            f"A prefix is 1 to {MAX_PREFIX_LENGTH} characters without spaces, and does not "
            "end in a digit",
            field="tracking_token_prefix",
        )
    return value


def _normalised(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` with every value in its stored form; InvalidSetting on the first bad."""
    known = set(OrganisationSettings.model_fields)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise InvalidSetting(f"No such setting: {unknown[0]}", field=unknown[0])
    result = dict(changes)
    if isinstance(result.get("email_domain"), str):
        try:
            result["email_domain"] = normalise_domain(result["email_domain"])
        except ValueError as exc:
            raise InvalidSetting(str(exc), field="email_domain") from exc
    if isinstance(result.get("tracking_token_prefix"), str):
        check_prefix(result["tracking_token_prefix"])
    if isinstance(result.get("blocked_senders"), list):
        result["blocked_senders"] = normalise_blocked_senders(map(str, result["blocked_senders"]))
    if isinstance(result.get("blocked_attachment_extensions"), list):
        result["blocked_attachment_extensions"] = normalise_extensions(
            map(str, result["blocked_attachment_extensions"])
        )
    return result


def read_settings(stored: Mapping[str, Any] | None) -> OrganisationSettings:
    """The settings stored; a value no version could have written (edited into the
    database by hand) is read as its default, so the page can show and mend it."""
    return read_stored(OrganisationSettings, stored)


def merged(stored: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON to store: ``stored`` with ``changes`` applied, validated and normalised.

    Keys this version does not know are kept as they were.
    """
    current = read_settings(stored).model_dump(mode="json")
    candidate = {**dict(stored or {}), **current, **_normalised(changes)}
    try:
        settings = OrganisationSettings.model_validate(candidate)
    except ValidationError as exc:
        field, message = first_error(exc, "settings")
        raise InvalidSetting(message, field=field) from exc
    return settings.model_dump(mode="json")


# -- reading and writing, through the rights ----------------------------------------------


def may_read_settings(principal: Principal) -> bool:
    return principal.depth(RecordType.ORGANISATION, Privilege.READ) is Depth.ORGANISATION


def may_change_settings(principal: Principal) -> bool:
    return principal.depth(RecordType.ORGANISATION, Privilege.WRITE) is Depth.ORGANISATION


def _organisation(session: Session, principal: Principal, privilege: Privilege) -> Organisation:
    allowed = may_change_settings if privilege is Privilege.WRITE else may_read_settings
    if not allowed(principal):
        raise Forbidden(
            f"Only an administrator of the organisation may {privilege.value} its settings",
            privilege=privilege.value,
        )
    organisation = session.get(Organisation, principal.organisation_id)
    if organisation is None:
        raise NotFound("organisation", principal.organisation_id)
    return organisation


def get_settings(session: Session, principal: Principal) -> OrganisationSettings:
    """The caller's organisation's settings (defaults for what was never set)."""
    return read_settings(_organisation(session, principal, Privilege.READ).settings)


def update_settings(
    session: Session, principal: Principal, changes: Mapping[str, Any]
) -> OrganisationSettings:
    """Change some settings: ``{'email_domain': 'acme.example'}``; the rest keep theirs.

    The sync engines read the new values from their next pass.
    """
    organisation = _organisation(session, principal, Privilege.WRITE)
    stored = merged(organisation.settings, changes)
    # A new dict: the JSON column notices a replaced value, not one changed in place.
    organisation.settings = stored
    session.flush()
    return OrganisationSettings.model_validate(stored)
