"""Search over customer records by name and address: the search box and set-regarding.

What is matched, case-insensitively, as a substring of:

    account      name, email1
    contact      first name, last name, "First Last", email1-3
    lead         subject, first name, last name, "First Last", company, email1
    opportunity  name
    case         title, ticket number

and, when the query is an address, every record the address index (crmsync.crm.addresses)
has under its normalised form (``Ann@Bücher.Example`` finds ``ann@xn--bcher-kva.example``).

Ranked: exact matches first (a field equal to the query, or the address), then prefix
matches (a field starting with it), then the rest; ties by title. One SQL query: a
SELECT per record type, UNION ALL, ordered and limited in the database. No index serves
a substring match: each type is scanned (within the caller's visible rows), which is fast
up to some hundred thousand records; a trigram index is the next step beyond.

The query is text, never a pattern: ``%``, ``_`` and the escape character match
themselves (LIKE with an explicit ESCAPE). Case-insensitivity is the database's
``lower()``: Unicode-aware on PostgreSQL, ASCII-only on SQLite (``Ü`` and ``ü`` differ
there; ``Müller`` and ``müller`` do not).

Rights: every branch is filtered by crmsync.crm.access.visible, and so is the account
named in a subtitle — a record the caller may not read is never a hit, never a subtitle.
Must never return a row that was not filtered in SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from crmsync.core.addresses import normalise_address
from crmsync.core.types import CUSTOMER_RECORD_TYPES, RecordType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.models.records import Account, Case, Contact, Lead, Opportunity
from crmsync.crm.models.sharing import EmailAddressEntry
from crmsync.crm.records import contact_name

MAX_QUERY = 200
MAX_HITS = 50
ESCAPE = "\\"

EXACT, PREFIX, SUBSTRING = 0, 1, 2


@dataclass(frozen=True)
class SearchHit:
    """``SearchHit(CONTACT, id, 'Nancy Buyer', 'nancy@fabrikam.example · Fabrikam')``."""

    record_type: RecordType
    record_id: uuid.UUID
    title: str
    subtitle: str


def escape_like(text: str) -> str:
    """``'50%_off'`` → ``'50\\%\\_off'``: a LIKE pattern matching exactly ``text``."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


@dataclass(frozen=True)
class _Terms:
    """The query, folded, as the three things each field is compared with."""

    folded: str
    address: str | None  # normalised, when the query is an address

    def exact(self, column: SQLColumnExpression[Any]) -> ColumnElement[bool]:
        return func.lower(column) == self.folded

    def prefix(self, column: SQLColumnExpression[Any]) -> ColumnElement[bool]:
        return func.lower(column).like(escape_like(self.folded) + "%", escape=ESCAPE)

    def contains(self, column: SQLColumnExpression[Any]) -> ColumnElement[bool]:
        return func.lower(column).like("%" + escape_like(self.folded) + "%", escape=ESCAPE)


def _text(value: str | None) -> ColumnElement[Any]:
    # Typed, so PostgreSQL knows each UNION column's type from the first SELECT.
    return cast(literal(value) if value is not None else null(), String(400))


def _branch(
    terms: _Terms,
    principal: Principal,
    model: Any,
    title: SQLColumnExpression[Any],
    details: tuple[SQLColumnExpression[Any], SQLColumnExpression[Any]],
    fields: Iterable[SQLColumnExpression[Any]],
    joins: Iterable[tuple[Any, ColumnElement[bool]]] = (),
) -> Select[*tuple[Any, ...]]:
    fields = list(fields)
    record_type: RecordType = model.record_type
    by_address: ColumnElement[bool] = false()
    if terms.address is not None:
        by_address = model.id.in_(
            select(EmailAddressEntry.record_id).where(
                EmailAddressEntry.organisation_id == principal.organisation_id,
                EmailAddressEntry.record_type == record_type,
                EmailAddressEntry.address == terms.address,
            )
        )
    rank = case(
        (or_(by_address, *(terms.exact(f) for f in fields)), EXACT),
        (or_(*(terms.prefix(f) for f in fields)), PREFIX),
        else_=SUBSTRING,
    )
    query = select(
        cast(literal(record_type.value), String(32)).label("record_type"),
        model.id.label("record_id"),
        cast(title, String(400)).label("title"),
        cast(details[0], String(400)).label("detail1"),
        cast(details[1], String(400)).label("detail2"),
        cast(rank, Integer).label("rank"),
    ).select_from(model)
    for target, on in joins:
        query = query.outerjoin(target, on)
    return query.where(
        access.visible(model, principal),
        or_(by_address, *(terms.contains(f) for f in fields)),
    )


def _account_of(principal: Principal, owner: Any) -> tuple[Any, tuple[Any, ColumnElement[bool]]]:
    """The record's account, joined only when the caller may read it (else NULL)."""
    account = aliased(Account, name=f"account_of_{owner.record_type.value}")
    on = and_(account.id == owner.account_id, access.visible(account, principal))
    return account, (account, on)


def _branches(
    terms: _Terms, principal: Principal, types: set[RecordType]
) -> list[Select[*tuple[Any, ...]]]:
    branches: list[Select[*tuple[Any, ...]]] = []
    if RecordType.ACCOUNT in types:
        branches.append(
            _branch(
                terms,
                principal,
                Account,
                Account.name,
                (Account.email1, _text(None)),
                (Account.name, Account.email1),
            )
        )
    if RecordType.CONTACT in types:
        account, join = _account_of(principal, Contact)
        branches.append(
            _branch(
                terms,
                principal,
                Contact,
                contact_name(),
                (func.coalesce(Contact.email1, Contact.email2, Contact.email3), account.name),
                (
                    Contact.first_name,
                    Contact.last_name,
                    contact_name(),
                    Contact.email1,
                    Contact.email2,
                    Contact.email3,
                ),
                [join],
            )
        )
    if RecordType.LEAD in types:
        lead_name = func.trim(Lead.first_name + " " + Lead.last_name)
        branches.append(
            _branch(
                terms,
                principal,
                Lead,
                func.coalesce(func.nullif(lead_name, ""), Lead.subject),
                (Lead.subject, func.coalesce(Lead.company_name, Lead.email1)),
                (
                    Lead.subject,
                    Lead.first_name,
                    Lead.last_name,
                    lead_name,
                    Lead.company_name,
                    Lead.email1,
                ),
            )
        )
    if RecordType.OPPORTUNITY in types:
        account, join = _account_of(principal, Opportunity)
        branches.append(
            _branch(
                terms,
                principal,
                Opportunity,
                Opportunity.name,
                (account.name, _text(None)),
                (Opportunity.name,),
                [join],
            )
        )
    if RecordType.CASE in types:
        account, join = _account_of(principal, Case)
        branches.append(
            _branch(
                terms,
                principal,
                Case,
                Case.title,
                (Case.ticket_number, account.name),
                (Case.title, Case.ticket_number),
                [join],
            )
        )
    return branches


def search(
    session: Session,
    principal: Principal,
    query: str,
    *,
    types: Iterable[RecordType] | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """The records the caller may read that match ``query``, best first.

    ``types`` narrows to some of account, contact, lead, opportunity and case (default:
    all; other types are ignored). A blank query finds nothing; a query is cut at
    ``MAX_QUERY`` characters and ``limit`` to 1..``MAX_HITS``.

    ``search(session, me, 'nancy')`` →
    ``[SearchHit(CONTACT, id, 'Nancy Buyer', 'nancy@fabrikam.example · Fabrikam')]``
    """
    text = " ".join(query.split())[:MAX_QUERY]
    wanted = set(CUSTOMER_RECORD_TYPES) if types is None else set(types)
    wanted &= set(CUSTOMER_RECORD_TYPES)
    if not text or not wanted:
        return []
    address = normalise_address(text) if "@" in text else None
    terms = _Terms(folded=text.lower(), address=address)
    hits = union_all(*_branches(terms, principal, wanted)).subquery("hits")
    rows = session.execute(
        select(hits)
        .order_by(hits.c.rank, func.lower(hits.c.title), hits.c.record_type, hits.c.record_id)
        .limit(max(1, min(limit, MAX_HITS)))
    )
    return [
        SearchHit(
            record_type=RecordType(row.record_type),
            record_id=row.record_id,
            title=row.title or "",
            subtitle=" · ".join(part for part in (row.detail1, row.detail2) if part),
        )
        for row in rows
    ]
