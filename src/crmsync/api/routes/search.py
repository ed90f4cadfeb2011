"""``GET /api/v1/search``: records by name, title or address, best first (crm/search.py).

The side panel searches here for an email's regarding record, so a panel token works
here too (``PanelPrincipal``, api/deps.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from crmsync.api.deps import PanelPrincipal, SessionDep
from crmsync.api.schemas.search import SearchHitPublic, SearchResults, SearchType
from crmsync.core.types import RecordType
from crmsync.crm import search

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchResults, name="search_records")
def search_records(
    session: SessionDep,
    principal: PanelPrincipal,
    q: str = Query(
        min_length=1,
        max_length=search.MAX_QUERY,
        description="Text to find, case-insensitively, anywhere in a name, title, ticket "
        "number or address; % and _ are plain characters. An address also finds the "
        "records it belongs to however it is written (case, internationalised domains).",
    ),
    types: list[SearchType] | None = Query(
        default=None, description="Only these record types (repeat the parameter); all by default."
    ),
    limit: int = Query(default=20, ge=1, le=search.MAX_HITS),
) -> SearchResults:
    """Accounts, contacts, leads, opportunities and cases you may read that match ``q``."""
    wanted = None if types is None else [RecordType(value) for value in types]
    hits = search.search(session, principal, q, types=wanted, limit=limit)
    return SearchResults(items=[SearchHitPublic.model_validate(hit) for hit in hits])
