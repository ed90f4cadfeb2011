"""Controller for the test OAuth 2.0 authorization server (``oauth_server.py``).

What it is for: Google's and Microsoft's token services cannot run here, so tests of the
refresh-token grant and of XOAUTH2 logins use a small authorization server of our own
that speaks the same protocol over HTTP on 127.0.0.1: a token endpoint (RFC 6749 §6) and a
token introspection endpoint (RFC 7662) that Dovecot's oauth2 passdb asks whether an
access token is valid and whose it is. ``OAuthServer`` starts it as a separate process
(in its own process group, like the SMTP relay), waits (bounded) for its ready file, and
manages its state: clients, refresh tokens (grants), revocations, token lifetime,
rotation and queued faults, all in ``DIR/state.json`` (``oauth_state.py``), which the
server re-reads on every request.

What it must never do: run the HTTP server in the test process, wait without a deadline,
leave the process running (SIGTERM, then SIGKILL of its process group; see ``process.py``),
or be mistaken for a real provider: it skips the authorization-code step (a grant is
made directly with ``grant_refresh_token``) and serves plain HTTP, so token requests
to it need ``allow_plaintext=True``.

    with OAuthServer() as oauth:
        oauth.register_client("crmsync", "client-secret")
        refresh = oauth.grant_refresh_token("alice@example.test")
        oauth.token_url             # http://127.0.0.1:PORT/token
        oauth.introspection_url     # http://dovecot:SECRET@127.0.0.1:PORT/introspect
        oauth.revoke(refresh)       # the grant and every access token issued from it
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from tests.servers import oauth_state, process

INTROSPECTION_CLIENT = "dovecot"


@dataclass(frozen=True)
class OAuthClient:
    """A registered client: what a mail server profile stores (``client_secret`` None = public)."""

    client_id: str
    client_secret: str | None


class OAuthServer(process.ServerLifecycle):
    """One authorization server process. Use as a context manager or ``start()``/``stop()``."""

    host = process.LOOPBACK

    def __init__(
        self,
        directory: Path | None = None,
        *,
        access_token_lifetime: int = 3600,
        rotate_refresh_tokens: bool = False,
        startup_timeout: float = 20.0,
    ) -> None:
        self.startup_timeout = startup_timeout
        self._initial_settings: dict[str, int | bool] = {
            "access_token_lifetime": access_token_lifetime,
            "rotate_refresh_tokens": rotate_refresh_tokens,
        }
        self._owns_directory = directory is None
        self.directory = (directory or Path(tempfile.mkdtemp(prefix="crmsync-oauth-"))).resolve()
        self.introspection_secret = secrets.token_urlsafe(16)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # -- where things are ---------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "oauth.log"

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("OAuthServer is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        """With the introspection client's Basic credentials, as Dovecot's passdb takes it."""
        return (
            f"http://{INTROSPECTION_CLIENT}:{self.introspection_secret}@"
            f"{self.host}:{self.port}/introspect"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Self:
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        oauth_state.create(self.state_path, oauth_state.empty_state(**self._initial_settings))
        with oauth_state.transaction(self.state_path) as state:
            state["introspection_clients"][INTROSPECTION_CLIENT] = self.introspection_secret
        ready_file = self.directory / "ready.json"
        ready_file.unlink(missing_ok=True)
        process.track(self)
        argv = ["--state", str(self.state_path), "--ready", str(ready_file)]
        if self.port:  # a restart keeps the port Dovecot was configured with
            argv += ["--port", str(self.port)]
        self._proc = proc = process.spawn(
            process.python_module_argv("tests.servers.oauth_server", *argv),
            log_path=self.log_path,
        )

        def exited() -> str | None:
            code = proc.poll()
            return None if code is None else f"oauth server exited with status {code}"

        try:
            process.wait_until(
                ready_file.exists, timeout=self.startup_timeout, what="OAuth server", abort=exited
            )
        except TimeoutError as exc:
            self.stop()
            raise process.ServerStartError(
                f"OAuth server did not start: {exc}\n--- {self.log_path} ---\n"
                f"{process.tail(self.log_path)}"
            ) from exc
        self.port = int(json.loads(ready_file.read_text())["port"])
        return self

    def halt(self) -> None:
        """Stop the process but keep state and port, so ``start()`` brings it back."""
        if self._proc is not None:
            process.terminate(self._proc, timeout=10)
            self._proc = None

    def stop(self) -> None:
        """Stop the process; remove the directory if it was a temporary one. Idempotent."""
        self.halt()
        process.untrack(self)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- clients, grants, tokens --------------------------------------------------------
    def register_client(self, client_id: str, secret: str | None) -> OAuthClient:
        """Register (or replace) a client; ``secret=None`` makes it public (no secret)."""
        with oauth_state.transaction(self.state_path) as state:
            state["clients"][client_id] = {"secret": secret}
        return OAuthClient(client_id, secret)

    def grant_refresh_token(
        self, login: str, *, client_id: str | None = None, scope: str | None = None
    ) -> str:
        """A new refresh token for ``login``, as if the user had just consented.

        ``client_id`` binds it to one client (None: any registered client may use it);
        ``scope`` limits what a refresh may ask for (None: anything).
        """
        refresh_token = f"rt-{secrets.token_urlsafe(32)}"
        with oauth_state.transaction(self.state_path) as state:
            state["refresh_tokens"][refresh_token] = {
                "login": login,
                "client_id": client_id,
                "scope": scope,
                "revoked": False,
            }
        return refresh_token

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token (and every access token issued from it) or an access token.

        Returns False when the server never issued ``token``.
        """
        with oauth_state.transaction(self.state_path) as state:
            if token in state["refresh_tokens"]:
                state["refresh_tokens"][token]["revoked"] = True
                for issued in state["access_tokens"].values():
                    if issued["refresh_token"] == token:
                        issued["revoked"] = True
                return True
            if token in state["access_tokens"]:
                state["access_tokens"][token]["revoked"] = True
                return True
        return False

    def configure(
        self, *, access_token_lifetime: int | None = None, rotate_refresh_tokens: bool | None = None
    ) -> None:
        """Change settings for the following requests."""
        with oauth_state.transaction(self.state_path) as state:
            if access_token_lifetime is not None:
                state["settings"]["access_token_lifetime"] = access_token_lifetime
            if rotate_refresh_tokens is not None:
                state["settings"]["rotate_refresh_tokens"] = rotate_refresh_tokens

    def fail_next(
        self,
        status: int,
        error: str | None = None,
        *,
        description: str | None = None,
        retry_after: str | None = None,
        body: str | None = None,
    ) -> None:
        """Queue one answer for the next ``/token`` request instead of the grant.

        ``error``/``description`` make a JSON error body; ``body`` sends that text as is
        (e.g. an HTML error page).
        """
        fault = {
            "status": status,
            "error": error,
            "description": description,
            "retry_after": retry_after,
            "body": body,
        }
        with oauth_state.transaction(self.state_path) as state:
            state["faults"].append(fault)

    def reset(self) -> None:
        """Back to the settings given to the constructor, with no queued faults.

        Clients, grants and issued tokens stay (tests make their own).
        """
        with oauth_state.transaction(self.state_path) as state:
            state["settings"] = dict(self._initial_settings)
            state["faults"] = []

    def access_token_info(self, access_token: str) -> dict[str, Any] | None:
        """What the server recorded about an access token it issued (None if it did not)."""
        info: dict[str, Any] | None = oauth_state.read(self.state_path)["access_tokens"].get(
            access_token
        )
        return info

    def log_tail(self, lines: int = 40) -> str:
        return process.tail(self.log_path, lines)

    def describe(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "token_url": self.token_url,
            "introspection_url": self.introspection_url,
            "state": str(self.state_path),
            "directory": str(self.directory),
        }
