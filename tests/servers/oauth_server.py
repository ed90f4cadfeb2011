"""A small OAuth 2.0 authorization server for tests, run as its own process.

    python -m tests.servers.oauth_server --state DIR/state.json --ready DIR/ready.json

What it is for: a stand-in for Google's and Microsoft's token services, which cannot run
here, so that crmsync's refresh-token grant and Dovecot's XOAUTH2/OAUTHBEARER logins are
tested against a genuine HTTP server speaking the same protocol:

- ``POST /token`` — the refresh-token grant (RFC 6749 §6). Client authentication by HTTP
  Basic or by ``client_id``/``client_secret`` in the form (§2.3.1; a client registered
  without a secret is public and sends only ``client_id``). Issues a random Bearer access
  token with ``expires_in``; rotates the refresh token when the settings say so (the old
  one then answers ``invalid_grant``, as Microsoft's do). Errors as §5.2 spells them:
  unknown client or wrong secret → 401 ``invalid_client``; unknown, revoked, rotated or
  another client's refresh token → 400 ``invalid_grant``; a scope beyond the grant → 400
  ``invalid_scope``; another grant type → 400 ``unsupported_grant_type``.
- ``POST /introspect`` (``token=…`` form, RFC 7662 §2.1) and ``GET /introspect?token=…`` —
  ``{"active": true, "username": LOGIN, "sub": LOGIN, "exp": …, …}`` for an access token it
  issued that is neither expired nor revoked, else ``{"active": false}``. The caller must
  authenticate with HTTP Basic as a registered introspection client (RFC 7662 §2.1 MUST);
  Dovecot's oauth2 passdb sends the user name and password of ``introspection_url``.

All state (clients, grants, issued tokens, settings, queued faults) is the JSON file of
``oauth_state.py``, re-read on every request: the controller (``oauth.py``) changes it
between requests. A queued fault (``{"status": 503, "retry_after": "7"}``) answers the
next ``/token`` request instead of the grant.

What it must never do: listen beyond 127.0.0.1, log a token, secret or query string, or
keep running after SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from tests.servers import oauth_state
from tests.servers.oauth_state import State

logger = logging.getLogger("oauth_server")

MAX_BODY = 64 * 1024
Reply = tuple[int, dict[str, Any] | str, dict[str, str]]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str, **headers: str) -> Reply:
    return status, {"error": error, "error_description": description}, {**NO_STORE, **headers}


def parse_form(raw: str) -> dict[str, str] | None:
    """``a=1&b=2`` → ``{"a": "1", "b": "2"}``; None when a parameter repeats (RFC 6749 §3.2)."""
    pairs = parse_qs(raw, keep_blank_values=True)
    if any(len(values) > 1 for values in pairs.values()):
        return None
    return {key: values[0] for key, values in pairs.items()}


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic base64(urlencode(id):urlencode(secret))`` (RFC 6749 §2.3.1)."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(user), unquote_plus(password)


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


# -- the token endpoint -----------------------------------------------------------------------
def token_reply(state: State, form: Mapping[str, str], authorization: str | None) -> Reply:
    """The answer to one ``POST /token``; changes ``state`` (faults, tokens) in place."""
    if state["faults"]:
        fault = state["faults"].pop(0)
        if fault is not None:
            return _fault_reply(fault)
    basic = basic_credentials(authorization)
    if basic is not None and "client_secret" in form:
        return oauth_error(400, "invalid_request", "use one client authentication method")
    client_id: str | None = form.get("client_id")
    secret: str | None = form.get("client_secret")
    if basic is not None:
        client_id, secret = basic
    client = state["clients"].get(client_id or "")
    if client is None or (client["secret"] is not None and not _same(secret, client["secret"])):
        return oauth_error(
            401, "invalid_client", "Client authentication failed.", **{"WWW-Authenticate": "Basic"}
        )
    if form.get("grant_type") != "refresh_token":
        return oauth_error(400, "unsupported_grant_type", "only refresh_token is supported")
    refresh_token = form.get("refresh_token")
    if not refresh_token:
        return oauth_error(400, "invalid_request", "refresh_token is missing")
    grant = state["refresh_tokens"].get(refresh_token)
    if grant is None or grant["revoked"]:
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
    if grant["client_id"] is not None and grant["client_id"] != client_id:
        return oauth_error(400, "invalid_grant", "The refresh token was issued to another client.")
    requested, granted = form.get("scope"), grant["scope"]
    if requested and granted is not None and not set(requested.split()) <= set(granted.split()):
        return oauth_error(400, "invalid_scope", "The requested scope exceeds the grant.")
    return _issue(state, grant, refresh_token, client_id or "", requested or granted)


def _issue(
    state: State, grant: dict[str, Any], refresh_token: str, client_id: str, scope: str | None
) -> Reply:
    settings = state["settings"]
    lifetime = int(settings["access_token_lifetime"])
    now = int(time.time())
    access_token = f"at-{secrets.token_urlsafe(32)}"
    answer: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    }
    if scope:
        answer["scope"] = scope
    source = refresh_token
    if settings["rotate_refresh_tokens"]:
        source = f"rt-{secrets.token_urlsafe(32)}"
        state["refresh_tokens"][source] = {**grant, "revoked": False}
        grant["revoked"] = True
        answer["refresh_token"] = source
    state["access_tokens"][access_token] = {
        "login": grant["login"],
        "client_id": client_id,
        "scope": scope,
        "refresh_token": source,
        "issued_at": now,
        "expires_at": now + lifetime,
        "revoked": False,
    }
    logger.info("issued an access token for %s to client %s", grant["login"], client_id)
    return 200, answer, dict(NO_STORE)


def _fault_reply(fault: Mapping[str, Any]) -> Reply:
    headers = dict(NO_STORE)
    if fault.get("retry_after"):
        headers["Retry-After"] = str(fault["retry_after"])
    if fault.get("body") is not None:
        return int(fault["status"]), str(fault["body"]), headers
    body: dict[str, Any] = {}
    if fault.get("error"):
        body = {"error": fault["error"], "error_description": fault.get("description") or ""}
    return int(fault["status"]), body, headers


# -- the introspection endpoint ---------------------------------------------------------------
def introspection_reply(state: State, token: str | None, authorization: str | None) -> Reply:
    """The answer to one introspection request (RFC 7662 §2.2)."""
    callers = state["introspection_clients"]
    if callers:
        basic = basic_credentials(authorization)
        if basic is None or not _same(basic[1], callers.get(basic[0])):
            return 401, {"error": "invalid_client"}, {"WWW-Authenticate": "Basic"}
    if not token:
        return 400, {"error": "invalid_request", "error_description": "token is missing"}, {}
    issued = state["access_tokens"].get(token)
    now = int(time.time())
    if issued is None or issued["revoked"] or issued["expires_at"] <= now:
        return 200, {"active": False}, dict(NO_STORE)
    answer = {
        "active": True,
        "username": issued["login"],
        "sub": issued["login"],
        "email": issued["login"],
        "client_id": issued["client_id"],
        "token_type": "Bearer",
        "iat": issued["issued_at"],
        "exp": issued["expires_at"],
    }
    if issued["scope"]:
        answer["scope"] = issued["scope"]
    return 200, answer, dict(NO_STORE)


# -- HTTP plumbing ----------------------------------------------------------------------------
class OAuthHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state_path: Path) -> None:
        super().__init__(address, Handler)
        self.state_path = state_path


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OAuthHTTPServer

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if body is None:
            return
        form = parse_form(body)
        if form is None:
            self._reply(oauth_error(400, "invalid_request", "a parameter is repeated"))
            return
        authorization = self.headers.get("Authorization")
        if path == "/token":
            with oauth_state.transaction(self.server.state_path) as state:
                reply = token_reply(state, form, authorization)
        elif path == "/introspect":
            state = oauth_state.read(self.server.state_path)
            reply = introspection_reply(state, form.get("token"), authorization)
        else:
            reply = (404, {"error": "not_found"}, {})
        self._reply(reply)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/introspect":
            self._reply((404, {"error": "not_found"}, {}))
            return
        query = parse_form(parts.query) or {}
        state = oauth_state.read(self.server.state_path)
        self._reply(
            introspection_reply(state, query.get("token"), self.headers.get("Authorization"))
        )

    def _body(self) -> str | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            self._reply((411, {"error": "invalid_request"}, {"Connection": "close"}))
            return None
        return self.rfile.read(int(length)).decode("utf-8", "replace")

    def _reply(self, reply: Reply) -> None:
        status, body, headers = reply
        if isinstance(body, str):
            payload, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            payload, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The default logs the request line, whose query string may hold a token.
        logger.info("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s", format % args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.host != "127.0.0.1":
        parser.error("the test OAuth server listens on 127.0.0.1 only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    server = OAuthHTTPServer((args.host, args.port), args.state)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    port = server.server_address[1]
    tmp = args.ready.with_name(f".{args.ready.name}.tmp")
    tmp.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    os.replace(tmp, args.ready)
    logger.info("listening on %s:%s", args.host, port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
