"""The OAuth2 refresh grant without a server: expiry arithmetic, response parsing, errors."""

from __future__ import annotations

import json
import socket
import ssl
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.connectors.oauth import (
    DEFAULT_LIFETIME,
    MAX_DESCRIPTION,
    TokenGrant,
    needs_refresh,
    parse_token_response,
    refresh_access_token,
    translate,
)
from crmsync.core.errors import ErrorCode, SyncError

E = ErrorCode
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WHERE = "login.example.test:443"
ACCESS = "ya29.a0AfB_access-token-value"
REFRESH = "1//0g-refresh-token-value"
SECRET = "GOCSPX-client-secret-value"


def _parse(status: int, body: object, **kwargs: object) -> TokenGrant:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_token_response(status, raw, now=NOW, where=WHERE, **kwargs)  # type: ignore[arg-type]


def _refused(status: int, body: object, **kwargs: object) -> SyncError:
    with pytest.raises(SyncError) as caught:
        _parse(status, body, **kwargs)
    return caught.value


# -- needs_refresh ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_at", "expected"),
    [
        (None, True),
        (NOW + timedelta(hours=1), False),
        (NOW + timedelta(minutes=5, seconds=1), False),
        (NOW + timedelta(minutes=5), True),  # exactly at the margin: refresh
        (NOW + timedelta(minutes=1), True),
        (NOW - timedelta(seconds=1), True),
    ],
)
def test_needs_refresh(expires_at: datetime | None, expected: bool) -> None:
    assert needs_refresh(expires_at, NOW) is expected


def test_needs_refresh_margin() -> None:
    soon = NOW + timedelta(minutes=2)
    assert needs_refresh(soon, NOW, margin=timedelta(minutes=1)) is False
    assert needs_refresh(soon, NOW, margin=timedelta(minutes=3)) is True


def test_needs_refresh_compares_instants_across_time_zones() -> None:
    cet = datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=1)))
    assert needs_refresh(cet, NOW) is False  # 14:00+01:00 is 13:00 UTC, an hour away


def test_needs_refresh_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        needs_refresh(datetime(2025, 3, 1, 13, 0), NOW)


@given(st.integers(min_value=-10_000, max_value=10_000), st.integers(min_value=0, max_value=3_600))
def test_needs_refresh_is_expiry_minus_margin(offset: int, margin: int) -> None:
    expires_at = NOW + timedelta(seconds=offset)
    assert needs_refresh(expires_at, NOW, timedelta(seconds=margin)) is (offset <= margin)


# -- successful answers -------------------------------------------------------------------


def test_parse_google_style_answer() -> None:
    grant = _parse(
        200,
        {
            "access_token": ACCESS,
            "expires_in": 3599,
            "scope": "https://mail.google.com/",
            "token_type": "Bearer",
        },
    )
    assert grant == TokenGrant(
        access_token=ACCESS,
        expires_at=NOW + timedelta(seconds=3599),
        refresh_token=None,
        scope="https://mail.google.com/",
    )


def test_parse_rotated_refresh_token_microsoft_style() -> None:
    grant = _parse(
        200,
        {
            "token_type": "bearer",
            "scope": "https://outlook.office.com/IMAP.AccessAsUser.All",
            "expires_in": "3600",  # Azure AD v1 sent a string
            "ext_expires_in": 3600,
            "access_token": ACCESS,
            "refresh_token": "0.AXEA-rotated",
        },
    )
    assert grant.refresh_token == "0.AXEA-rotated"
    assert grant.expires_at == NOW + timedelta(hours=1)


def test_parse_fractional_expires_in() -> None:
    assert _parse(200, {"access_token": ACCESS, "expires_in": 59.9}).expires_at == NOW + timedelta(
        seconds=59
    )


def test_parse_without_expires_in_assumes_a_short_life() -> None:
    assert _parse(200, {"access_token": ACCESS}).expires_at == NOW + DEFAULT_LIFETIME


def test_parse_ignores_empty_refresh_token_and_odd_scope() -> None:
    grant = _parse(200, {"access_token": ACCESS, "refresh_token": "", "scope": ["a"]})
    assert grant.refresh_token is None
    assert grant.scope is None


def test_grant_repr_hides_tokens() -> None:
    grant = TokenGrant(ACCESS, NOW, refresh_token=REFRESH, scope="mail")
    for text in (repr(grant), str(grant), f"{grant}", f"{[grant]}"):
        assert ACCESS not in text
        assert REFRESH not in text
        assert "<hidden>" in text
        assert "'mail'" in text
    assert "refresh_token=None" in repr(TokenGrant(ACCESS, NOW))


# -- malformed answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>Service</html>", "not a JSON object"),
        (b"", "not a JSON object"),
        (b'["access_token"]', "not a JSON object"),
        (b"\xff\xfe", "not a JSON object"),
        ({"token_type": "Bearer"}, "no access_token"),
        ({"access_token": ""}, "no access_token"),
        ({"access_token": 42}, "no access_token"),
        ({"access_token": ACCESS, "token_type": "mac"}, "'mac' token, not a Bearer"),
        ({"access_token": ACCESS, "expires_in": -5}, "expires_in -5"),
        ({"access_token": ACCESS, "expires_in": True}, "expires_in True"),
        ({"access_token": ACCESS, "expires_in": "soon"}, "expires_in 'soon'"),
        ({"access_token": ACCESS, "expires_in": 1e300}, "expires_in 1e+300"),
        ({"access_token": ACCESS, "expires_in": [1]}, "[1]"),
    ],
)
def test_malformed_success_is_protocol_error(body: object, words: str) -> None:
    error = _refused(200, body)
    assert error.code is E.PROTOCOL_ERROR
    assert error.transient
    assert words in error.detail
    assert error.detail.endswith(f"({WHERE})")
    assert ACCESS not in error.detail


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, "invalid_grant", E.OAUTH_REFRESH_FAILED),
        (401, "invalid_grant", E.OAUTH_REFRESH_FAILED),
        (400, "invalid_client", E.OAUTH_REFRESH_FAILED),
        (401, "invalid_client", E.OAUTH_REFRESH_FAILED),
        (400, "unauthorized_client", E.OAUTH_REFRESH_FAILED),
        (400, "invalid_scope", E.CONFIGURATION),
        (400, "invalid_request", E.CONFIGURATION),
        (400, "unsupported_grant_type", E.CONFIGURATION),
        (400, "temporarily_unavailable", E.SERVER_UNAVAILABLE),
        (400, "something_new", E.OAUTH_REFRESH_FAILED),
        (403, "something_new", E.CONFIGURATION),
        (200, "invalid_grant", E.OAUTH_REFRESH_FAILED),  # a 200 that is an error
    ],
)
def test_oauth_errors(status: int, error: str, code: ErrorCode) -> None:
    refused = _refused(status, {"error": error, "error_description": "Why it was refused."})
    assert refused.code is code
    assert f"(HTTP {status}): {error}: Why it was refused. ({WHERE})" in refused.detail


def test_revoked_grant_is_permanent() -> None:
    error = _refused(
        400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    )
    assert error.code is E.OAUTH_REFRESH_FAILED
    assert not error.transient
    assert "Sign in again" in error.remediation


def test_error_without_description() -> None:
    assert _refused(400, {"error": "invalid_grant"}).detail.endswith(
        f"(HTTP 400): invalid_grant ({WHERE})"
    )


def test_error_text_is_cleaned_and_redacted() -> None:
    description = f"bad token {REFRESH} for client secret {SECRET}\r\nInjected: header\x00" + (
        "x" * 1000
    )
    error = _refused(
        400,
        {"error": "invalid_grant\nforged", "error_description": description},
        secrets=(REFRESH, SECRET),
    )
    assert REFRESH not in error.detail
    assert SECRET not in error.detail
    assert "\n" not in error.detail
    assert "\r" not in error.detail
    assert "\x00" not in error.detail
    assert "invalid_grant forged" in error.detail
    assert len(error.detail) < MAX_DESCRIPTION + 200


@pytest.mark.parametrize(
    ("status", "retry_after", "code", "words"),
    [
        (429, "30", E.THROTTLED, "HTTP 429; it asks to wait 30 s"),
        (429, None, E.THROTTLED, "HTTP 429 ("),
        (500, None, E.SERVER_UNAVAILABLE, "HTTP 500 ("),
        (502, None, E.SERVER_UNAVAILABLE, "HTTP 502 ("),
        (503, "120", E.SERVER_UNAVAILABLE, "HTTP 503; it asks to wait 120 s"),
    ],
)
def test_busy_servers_are_transient(
    status: int, retry_after: str | None, code: ErrorCode, words: str
) -> None:
    error = _refused(status, b"<html>busy</html>", retry_after=retry_after)
    assert error.code is code
    assert error.transient
    assert words in error.detail


def test_server_error_json_still_means_unavailable() -> None:
    error = _refused(503, {"error": "temporarily_unavailable"})
    assert error.code is E.SERVER_UNAVAILABLE


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, E.OAUTH_REFRESH_FAILED),
        (400, E.PROTOCOL_ERROR),
        (404, E.CONFIGURATION),
        (405, E.CONFIGURATION),
        (302, E.CONFIGURATION),
    ],
)
def test_refusals_without_an_oauth_error(status: int, code: ErrorCode) -> None:
    error = _refused(status, b"<html>Not here</html>")
    assert error.code is code
    assert f"HTTP {status}" in error.detail


# -- configuration checked before any request ---------------------------------------------


def _refresh(token_url: str, **kwargs: object) -> SyncError:
    options: dict[str, object] = {
        "client_id": "crmsync",
        "client_secret": SECRET,
        "refresh_token": REFRESH,
        "scopes": None,
        **kwargs,
    }
    with pytest.raises(SyncError) as caught:
        refresh_access_token(token_url, **options)  # type: ignore[arg-type]
    assert SECRET not in str(caught.value)
    assert REFRESH not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "url", ["", "not a url", "ftp://login.example.test/token", "https:///token", "/token"]
)
def test_unusable_token_url(url: str) -> None:
    assert _refresh(url).code is E.CONFIGURATION


def test_token_url_with_credentials_is_refused() -> None:
    error = _refresh(f"https://crmsync:{SECRET}@login.example.test/token")
    assert error.code is E.CONFIGURATION
    assert "client id and secret" in error.detail


def test_plain_http_needs_allow_plaintext() -> None:
    error = _refresh("http://login.example.test/token")
    assert error.code is E.TLS_REQUIRED
    assert error.detail.endswith("(login.example.test:80)")


def test_missing_refresh_token() -> None:
    error = _refresh("https://login.example.test/token", refresh_token="")
    assert error.code is E.CREDENTIALS_MISSING


def test_bad_ca_pem() -> None:
    error = _refresh("https://login.example.test:8443/token", ca_pem="not a certificate")
    assert error.code is E.CONFIGURATION
    assert "(login.example.test:8443)" in error.detail


# -- httpx failures -----------------------------------------------------------------------


def _wrapped(outer: Exception, inner: BaseException | None) -> Exception:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (
            _wrapped(httpx.ConnectError("refused"), ConnectionRefusedError(111, "refused")),
            E.HOST_UNREACHABLE,
        ),
        (
            _wrapped(httpx.ConnectError("dns"), socket.gaierror(-2, "Name or service not known")),
            E.DNS_FAILED,
        ),
        (_wrapped(httpx.ReadTimeout("slow"), TimeoutError("timed out")), E.TIMEOUT),
        (httpx.ConnectTimeout("slow"), E.TIMEOUT),
        (httpx.ConnectError("no route"), E.HOST_UNREACHABLE),
        (
            _wrapped(
                httpx.ConnectError("tls"),
                ssl.SSLCertVerificationError(1, "certificate verify failed"),
            ),
            E.TLS_FAILED,
        ),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), None),
        (httpx.ReadError("reset"), E.CONNECTION_LOST),
        (httpx.RemoteProtocolError("illegal header"), E.PROTOCOL_ERROR),
        (ValueError("not httpx"), "none"),
    ],
)
def test_translate_httpx_errors(exc: Exception, code: ErrorCode | str | None) -> None:
    error = translate(WHERE)(exc)
    if code == "none":
        assert error is None
        return
    assert error is not None
    assert error.code is (code or E.CONNECTION_LOST)
    assert error.detail.endswith(f"({WHERE})")
