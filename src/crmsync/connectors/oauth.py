"""OAuth 2.0 refresh-token grant (RFC 6749 §6): a fresh access token for XOAUTH2 logins.

What it is for: a mailbox authorised with OAuth2 (Gmail, Outlook.com, Exchange Online, any
standard authorization server) stores a long-lived refresh token; before each session the
engines call ``needs_refresh`` and, when it says so, ``refresh_access_token`` for a
short-lived access token to put into ``Credentials.oauth_access_token``. When the server
rotates refresh tokens (Microsoft always does, Google does not), the grant carries the new
one and the caller must store it in place of the old.

What it must never do: import crmsync.crm, let an httpx/socket/ssl exception escape (every
failure becomes one ``SyncError`` here, via ``transport.mapped_errors``), put an access
token, refresh token or client secret into a detail, a log line, a ``repr`` or a chained
exception, follow redirects (the form carries secrets), read proxy or CA settings from the
environment (``trust_env=False``: settings are passed in), or send the request over plain
HTTP unless ``allow_plaintext`` says so (test rigs only).

The exchange (RFC 6749 §6, §5.1, §5.2), client credentials in the form body
(``client_secret_post``, §2.3.1, which Google and Microsoft both accept; a public client
sends only ``client_id``)::

    POST /token  grant_type=refresh_token&refresh_token=…&client_id=…&client_secret=…&scope=…
    200 {"access_token": "…", "token_type": "Bearer", "expires_in": 3599,
         "refresh_token": "…" (when rotated), "scope": "…"}
    400 {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}

Mapping, first match wins:

    2xx with an access_token          TokenGrant
    2xx without one / not JSON        PROTOCOL_ERROR (transient)
    429                               THROTTLED
    5xx                               SERVER_UNAVAILABLE
    4xx with an ``error`` code        OAUTH_ERRORS (invalid_grant, invalid_client,
                                      unauthorized_client → OAUTH_REFRESH_FAILED, permanent;
                                      others as the table says; unknown → OAUTH_REFRESH_FAILED
                                      for 400/401, CONFIGURATION otherwise)
    401 without one                   OAUTH_REFRESH_FAILED
    400 without one                   PROTOCOL_ERROR
    other status                      CONFIGURATION (the token URL is likely wrong)
    network, TLS                      transport.map_error (refused → HOST_UNREACHABLE,
                                      timeout → TIMEOUT, certificate → TLS_FAILED, …)
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from crmsync.connectors.endpoints import Endpoint, Security
from crmsync.connectors.transport import Translate, map_error, mapped_errors, redact
from crmsync.core.errors import ErrorCode, SyncError

logger = logging.getLogger(__name__)

# RFC 6749 §5.1 only RECOMMENDS expires_in; without it, assume a short life so the token
# is refreshed early rather than used after it has expired.
DEFAULT_LIFETIME = timedelta(minutes=10)
MAX_RESPONSE_BYTES = 64 * 1024  # a token response is < 4 KiB; more is not a token server
MAX_LIFETIME_SECONDS = 10 * 365 * 86400  # beyond this it is not a token lifetime
MAX_DESCRIPTION = 300  # Microsoft's descriptions run long (AADSTS code first, trace ids last)
HTTP_THROTTLED = 429
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401

# RFC 6749 §5.2 error codes (plus two OAuth 2.0 extensions seen on token endpoints).
OAUTH_ERRORS: dict[str, ErrorCode] = {
    "invalid_grant": ErrorCode.OAUTH_REFRESH_FAILED,  # revoked, expired, wrong client
    "invalid_client": ErrorCode.OAUTH_REFRESH_FAILED,  # unknown client or wrong secret
    "unauthorized_client": ErrorCode.OAUTH_REFRESH_FAILED,  # client may not refresh
    "invalid_scope": ErrorCode.CONFIGURATION,  # the profile asks for scopes not granted
    "invalid_request": ErrorCode.CONFIGURATION,
    "unsupported_grant_type": ErrorCode.CONFIGURATION,
    "temporarily_unavailable": ErrorCode.SERVER_UNAVAILABLE,  # RFC 6749 §4.1.2.1
    "server_error": ErrorCode.SERVER_UNAVAILABLE,
    "slow_down": ErrorCode.THROTTLED,  # RFC 8628 §3.5
}

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, repr=False)
class TokenGrant:
    """What a successful refresh returns; ``repr``/``str`` never show the tokens.

    TokenGrant(access_token=<hidden>, expires_at=datetime(2025, 1, 1, 13, 0, tzinfo=UTC),
               refresh_token=None, scope='https://mail.google.com/')

    ``refresh_token`` is set only when the server rotated it: store it, drop the old one.
    """

    access_token: str
    expires_at: datetime
    refresh_token: str | None = None
    scope: str | None = None

    def __repr__(self) -> str:
        rotated = "<hidden>" if self.refresh_token else None
        return (
            f"TokenGrant(access_token=<hidden>, expires_at={self.expires_at!r}, "
            f"refresh_token={rotated}, scope={self.scope!r})"
        )

    __str__ = __repr__


def needs_refresh(
    expires_at: datetime | None, now: datetime, margin: timedelta = timedelta(minutes=5)
) -> bool:
    """Whether a token expiring at ``expires_at`` should be refreshed before use at ``now``.

    True when there is no token yet (``None``) or it expires within ``margin``. Both times
    must be timezone-aware.
    """
    if expires_at is None:
        return True
    if expires_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("needs_refresh takes timezone-aware datetimes")
    return now >= expires_at - margin


def refresh_access_token(
    token_url: str,
    *,
    client_id: str,
    client_secret: str | None,
    refresh_token: str,
    scopes: str | None,
    timeout: float = 30.0,
    ca_pem: str | None = None,
    now: datetime | None = None,
    allow_plaintext: bool = False,
) -> TokenGrant:
    """Exchange ``refresh_token`` for a new access token at ``token_url`` (RFC 6749 §6).

    ``scopes`` is the space-separated ``scope`` parameter (None to omit it: the grant's
    original scopes). ``expires_at`` is ``now`` (default: the current UTC time, taken
    before the request is sent) plus ``expires_in``. ``ca_pem`` adds trusted CAs as
    ``Endpoint.ca_pem`` does; an ``http://`` URL is refused with TLS_REQUIRED unless
    ``allow_plaintext`` (as ``Endpoint.allow_plaintext``). Raises ``SyncError`` (see the
    module's mapping table), never anything else.

    >>> grant = refresh_access_token("https://oauth2.googleapis.com/token",
    ...     client_id="…", client_secret="…", refresh_token="…", scopes=None)  # doctest: +SKIP
    >>> grant.access_token, grant.expires_at                                  # doctest: +SKIP
    ('ya29.…', datetime.datetime(2025, 1, 1, 13, 0, tzinfo=datetime.timezone.utc))
    """
    hidden = tuple(s for s in (refresh_token, client_secret) if s)
    url, endpoint = _token_endpoint(token_url, ca_pem, timeout, allow_plaintext)
    where = endpoint.where
    if not client_id or not refresh_token:
        raise SyncError(
            ErrorCode.CREDENTIALS_MISSING,
            f"no OAuth client id or refresh token for this mailbox ({where})",
        )
    started = now or datetime.now(UTC)
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    if client_secret:
        form["client_secret"] = client_secret
    if scopes:
        form["scope"] = scopes
    context: ssl.SSLContext | bool = endpoint.ssl_context() if endpoint.uses_tls else False
    with mapped_errors(where, translate=translate(where), secrets=hidden):
        status, body, retry_after = _post_form(url, form, context, timeout, where)
        grant = parse_token_response(
            status, body, now=started, where=where, retry_after=retry_after, secrets=hidden
        )
    logger.debug(
        "OAuth token refreshed at %s: expires %s, refresh token %s",
        where,
        grant.expires_at.isoformat(),
        "rotated" if grant.refresh_token else "kept",
    )
    return grant


def parse_token_response(
    status: int,
    body: bytes,
    *,
    now: datetime,
    where: str,
    retry_after: str | None = None,
    secrets: Iterable[str] = (),
) -> TokenGrant:
    """The grant in a token endpoint's answer, or the ``SyncError`` it means (pure).

    >>> parse_token_response(200, b'{"access_token": "t", "expires_in": 60}',
    ...     now=datetime(2025, 1, 1, tzinfo=UTC), where="idp:443").expires_at
    datetime.datetime(2025, 1, 1, 0, 1, tzinfo=datetime.timezone.utc)
    """
    data = _json_object(body)
    if 200 <= status < 300:
        if data is None:
            raise SyncError(
                ErrorCode.PROTOCOL_ERROR,
                f"the token endpoint's answer is not a JSON object ({where})",
            )
        if "access_token" not in data and isinstance(data.get("error"), str):
            raise _oauth_error(status, data, where, secrets)
        return _grant(data, now, where)
    wait = f"; it asks to wait {_clean(retry_after, 20)} s" if retry_after else ""
    if status == HTTP_THROTTLED:
        raise SyncError(
            ErrorCode.THROTTLED, f"the token endpoint answered HTTP 429{wait} ({where})"
        )
    if status >= 500:
        raise SyncError(
            ErrorCode.SERVER_UNAVAILABLE,
            f"the token endpoint answered HTTP {status}{wait} ({where})",
        )
    if data is not None and isinstance(data.get("error"), str):
        raise _oauth_error(status, data, where, secrets)
    if status == HTTP_UNAUTHORIZED:
        raise SyncError(
            ErrorCode.OAUTH_REFRESH_FAILED,
            f"the token endpoint refused the client (HTTP 401, no error code) ({where})",
        )
    if status == HTTP_BAD_REQUEST:
        raise SyncError(
            ErrorCode.PROTOCOL_ERROR,
            f"the token endpoint answered HTTP 400 without an OAuth error code ({where})",
        )
    raise SyncError(
        ErrorCode.CONFIGURATION,
        f"the token endpoint answered HTTP {status}; check the token URL ({where})",
    )


def translate(where: str) -> Translate:
    """httpx exceptions → the transport table, through the OSError they wrap when any."""

    def mapped(exc: Exception) -> SyncError | None:
        if not isinstance(exc, httpx.HTTPError):
            return None
        cause = _wrapped_os_error(exc)
        if cause is not None:
            return map_error(cause, where)
        if isinstance(exc, httpx.TimeoutException):
            return SyncError(ErrorCode.TIMEOUT, f"no answer in time (timed out) ({where})")
        if isinstance(exc, httpx.ConnectError):
            return SyncError(ErrorCode.HOST_UNREACHABLE, f"cannot connect: {exc} ({where})")
        if isinstance(exc, httpx.RemoteProtocolError) and "disconnect" in str(exc).lower():
            return SyncError(ErrorCode.CONNECTION_LOST, f"connection lost: {exc} ({where})")
        if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
            return SyncError(ErrorCode.CONNECTION_LOST, f"connection lost: {exc} ({where})")
        return SyncError(ErrorCode.PROTOCOL_ERROR, f"HTTP failed: {exc} ({where})")

    return mapped


# -- internals ------------------------------------------------------------------------------
def _token_endpoint(
    token_url: str, ca_pem: str | None, timeout: float, allow_plaintext: bool
) -> tuple[httpx.URL, Endpoint]:
    """The parsed URL and an ``Endpoint`` for its host (TLS policy, CA, ``where``)."""
    try:
        url = httpx.URL(token_url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise SyncError(ErrorCode.CONFIGURATION, f"invalid token URL: {exc}") from None
    if url.userinfo:
        raise SyncError(
            ErrorCode.CONFIGURATION,
            "the token URL must not carry a user name or password; set the client id and "
            "secret instead",
        )
    if url.scheme not in ("https", "http") or not url.host:
        raise SyncError(
            ErrorCode.CONFIGURATION, f"the token URL must be an https:// URL, not {token_url!r}"
        )
    default_port = 443 if url.scheme == "https" else 80
    security = Security.IMPLICIT_TLS if url.scheme == "https" else Security.PLAIN
    endpoint = Endpoint(
        url.host,
        url.port or default_port,
        security,
        ca_pem=ca_pem,
        allow_plaintext=allow_plaintext,
        timeout=timeout,
    )
    endpoint.require_allowed()
    return url, endpoint


def _wrapped_os_error(exc: BaseException) -> OSError | None:
    """The socket/ssl error under httpx's and httpcore's wrappers, if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _post_form(
    url: httpx.URL,
    form: dict[str, str],
    verify: ssl.SSLContext | bool,
    timeout: float,
    where: str,
) -> tuple[int, bytes, str | None]:
    """POST ``form`` once, no redirects; ``(status, body, Retry-After)``; httpx may raise."""
    with (
        httpx.Client(
            verify=verify, timeout=timeout, follow_redirects=False, trust_env=False
        ) as client,
        client.stream(
            "POST", url, data=form, headers={"Accept": "application/json", "User-Agent": "crmsync"}
        ) as response,
    ):
        return (
            response.status_code,
            _read_limited(response, where),
            response.headers.get("Retry-After"),
        )


def _read_limited(response: httpx.Response, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise SyncError(
                ErrorCode.PROTOCOL_ERROR,
                f"the token endpoint's answer exceeds {MAX_RESPONSE_BYTES} bytes ({where})",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _grant(data: dict[str, object], now: datetime, where: str) -> TokenGrant:
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise SyncError(
            ErrorCode.PROTOCOL_ERROR, f"the token endpoint's answer has no access_token ({where})"
        )
    token_type = data.get("token_type")
    if token_type is not None and (
        not isinstance(token_type, str) or token_type.lower() != "bearer"
    ):
        raise SyncError(
            ErrorCode.PROTOCOL_ERROR,
            f"the token endpoint issued a {_clean(token_type, 30)!r} token, not a Bearer "
            f"token ({where})",
        )
    lifetime = _lifetime(data.get("expires_in"), where)
    rotated = data.get("refresh_token")
    scope = data.get("scope")
    return TokenGrant(
        access_token=access_token,
        expires_at=now + lifetime,
        refresh_token=rotated if isinstance(rotated, str) and rotated else None,
        scope=scope if isinstance(scope, str) else None,
    )


def _lifetime(expires_in: object, where: str) -> timedelta:
    """``expires_in`` seconds; Azure AD v1 sent it as a string of digits."""
    if expires_in is None:
        return DEFAULT_LIFETIME
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        return timedelta(seconds=int(expires_in))
    if (
        isinstance(expires_in, int | float)
        and not isinstance(expires_in, bool)
        and 0 <= expires_in < MAX_LIFETIME_SECONDS
    ):
        return timedelta(seconds=int(expires_in))
    raise SyncError(
        ErrorCode.PROTOCOL_ERROR,
        f"the token endpoint's expires_in {_clean(repr(expires_in), 30)} is not a number of "
        f"seconds ({where})",
    )


def _oauth_error(
    status: int, data: dict[str, object], where: str, secrets: Iterable[str]
) -> SyncError:
    error = _clean(data.get("error"), 64)
    default = (
        ErrorCode.OAUTH_REFRESH_FAILED
        if status in (HTTP_BAD_REQUEST, HTTP_UNAUTHORIZED) or status < 300
        else ErrorCode.CONFIGURATION
    )
    code = OAUTH_ERRORS.get(error, default)
    description = data.get("error_description")
    text = f"{error}: {_clean(description, MAX_DESCRIPTION)}" if description else error
    return SyncError(
        code,
        redact(
            f"the token endpoint refused the refresh (HTTP {status}): {text} ({where})", secrets
        ),
    )


def _clean(value: object, limit: int) -> str:
    """Server text fit for a detail: one line, no control characters, at most ``limit``."""
    text = _UNPRINTABLE.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
