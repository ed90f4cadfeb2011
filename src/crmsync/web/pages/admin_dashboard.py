"""The performance dashboard for administrators, and the Prometheus endpoint.

``GET /admin/dashboard?window=24h|7d|30d&profile=<id>`` renders the page: totals of the
window, and four charts that static/js/dashboard.js draws with the vendored uPlot —
messages tracked and failed per bucket, emails sent, sync lag per mailbox, push latency
(median and 95th percentile). The charts' data comes from
``GET /admin/dashboard/data`` (same query), JSON the script fetches; the page itself
holds no script of its own (CSP). Everything comes from crm/stats.py, through
crm/access.py: a non-administrator gets the 404 page, a profile they may not read too.

``GET /metrics`` answers the Prometheus text format from the app's own registry
(crmsync.metrics). It is off unless configured: ``metrics_token`` (the scraper sends
``Authorization: Bearer <token>``, compared in constant time) and/or ``metrics_allow``
(client address networks); a request that meets neither gets the same 404 as a path
nobody serves, so the endpoint's existence does not show.

Must never put a person's address into the metrics, nor answer /metrics without a
configured token or address.
"""

from __future__ import annotations

import hmac
import ipaddress
import uuid
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from crmsync.api.credentials import bearer_token
from crmsync.api.deps import SessionDep, SettingsDep
from crmsync.config import Settings
from crmsync.crm import stats
from crmsync.crm.errors import NotFound
from crmsync.metrics import SyncMetrics
from crmsync.web.deps import AdminViewer
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

WindowParam = Annotated[stats.Window, Query()]
ProfileParam = Annotated[str, Query(max_length=64)]


def _profile_id(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound("email_server_profile", value) from exc


def chart_data(board: stats.Dashboard) -> dict[str, Any]:
    """What dashboard.js draws: series over ``buckets`` (epoch seconds), None for gaps."""
    return {
        "window": board.window.value,
        "bucketSeconds": board.bucket_seconds,
        "buckets": board.buckets,
        "fetched": board.fetched,
        "tracked": board.tracked,
        "failed": board.failed,
        "sent": board.sent,
        "pushMedian": board.push_median,
        "pushP95": board.push_p95,
        "lag": [asdict(series) for series in board.lag],
    }


@router.get("/admin/dashboard")
def dashboard_page(
    request: Request,
    viewer: AdminViewer,
    session: SessionDep,
    window: WindowParam = stats.Window.DAY,
    profile: ProfileParam = "",
) -> Response:
    profile_id = _profile_id(profile)
    board = stats.dashboard(session, viewer.principal, window, profile_id=profile_id)
    query = f"window={window.value}" + (f"&profile={profile_id}" if profile_id else "")
    return render(
        request,
        "admin/dashboard.html",
        {
            "nav": "admin",
            "board": board,
            "windows": list(stats.Window),
            "data_url": f"/admin/dashboard/data?{query}",
            "profile_name": next(
                (option.name for option in board.profiles if option.id == profile_id), ""
            ),
        },
    )


@router.get("/admin/dashboard/data")
def dashboard_data(
    viewer: AdminViewer,
    session: SessionDep,
    window: WindowParam = stats.Window.DAY,
    profile: ProfileParam = "",
) -> Response:
    board = stats.dashboard(session, viewer.principal, window, profile_id=_profile_id(profile))
    return JSONResponse(chart_data(board), headers={"Cache-Control": "no-store"})


def metrics_allowed(request: Request, settings: Settings) -> bool:
    """Whether the request may read /metrics: the configured bearer token, or a client
    address inside ``metrics_allow``. Nothing configured → nobody."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if token:
        given = bearer_token(request) or ""
        if hmac.compare_digest(given.encode(), token.encode()):
            return True
    if settings.metrics_allow and request.client is not None:
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(address in network for network in settings.metrics_allow)
    return False


@router.get("/metrics")
def metrics(request: Request, settings: SettingsDep) -> Response:
    if not metrics_allowed(request, settings):
        raise NotFound("page", "")
    registry: SyncMetrics = request.app.state.metrics
    return Response(
        registry.exposition(),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
