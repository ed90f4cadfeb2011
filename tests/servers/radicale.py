"""A real Radicale (CalDAV RFC 4791 / CardDAV RFC 6352) in a throwaway directory.

What it is for: the CalDAV/CardDAV connectors and the demo need a genuine DAV server.
``RadicaleServer`` runs ``python -m radicale --config DIR/config`` as a child in its own
process group with htpasswd (plain) users and filesystem storage under DIR/collections,
on a free 127.0.0.1 port (Radicale refuses port 0; a port taken meanwhile means a retry
on another), then waits (bounded) for an HTTP answer. Radicale re-reads the htpasswd file
on every login (``htpasswd_cache = False``), so ``add_user`` works while it runs.

What it must never do: listen beyond loopback, read a system or user Radicale config,
or leave the process running (SIGTERM, then SIGKILL of its process group).

    with RadicaleServer() as dav:
        bob = dav.add_user("bob", "secret")
        httpx.request("PROPFIND", dav.url + "bob/", auth=(bob.login, bob.password))
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tests.servers import process
from tests.servers.passwd import write_atomically
from tests.servers.tls import TlsMaterial

START_ATTEMPTS = 3  # a port picked with free_port() can be taken before Radicale binds it


@dataclass(frozen=True)
class DavUser:
    login: str
    password: str


class RadicaleServer(process.ServerLifecycle):
    host = process.LOOPBACK

    def __init__(
        self,
        directory: Path | None = None,
        *,
        tls: TlsMaterial | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.tls_material = tls
        self.startup_timeout = startup_timeout
        self._owns_directory = directory is None
        self.directory = (directory or Path(tempfile.mkdtemp(prefix="crmsync-radicale-"))).resolve()
        self.users: dict[str, DavUser] = {}
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "config"

    @property
    def users_path(self) -> Path:
        return self.directory / "users"

    @property
    def log_path(self) -> Path:
        return self.directory / "radicale.log"

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:40123/``."""
        scheme = "https" if self.tls_material else "http"
        return f"{scheme}://{self.host}:{self.port}/"

    @property
    def ca_cert(self) -> Path | None:
        return self.tls_material.ca_cert if self.tls_material else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def add_user(self, name: str, password: str) -> DavUser:
        """Add (or replace) a user; effective for the next request."""
        if ":" in name or "\n" in name + password:
            raise ValueError("':' in a login or newlines break the htpasswd file")
        user = DavUser(login=name, password=password)
        self.users[name] = user
        self._write_users()
        return user

    def start(self) -> Self:
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_users()
        process.track(self)
        for attempt in range(1, START_ATTEMPTS + 1):
            if attempt > 1 or not self.port:  # keep the port on restart; Radicale refuses :0
                self.port = process.free_port()
            self.config_path.write_text(self._config())
            self._proc = proc = process.spawn(
                process.python_module_argv("radicale", "--config", str(self.config_path)),
                log_path=self.log_path,
            )

            def exited(proc: subprocess.Popen[bytes] = proc) -> str | None:
                code = proc.poll()
                return None if code is None else f"radicale exited with status {code}"

            try:
                process.wait_until(
                    self._answers_http, timeout=self.startup_timeout, what="Radicale", abort=exited
                )
                return self
            except TimeoutError as exc:
                port_taken = "Address already in use" in self.log_tail(20)
                process.terminate(proc)
                self._proc = None
                if not port_taken or attempt == START_ATTEMPTS:
                    self.stop()
                    raise process.ServerStartError(
                        f"Radicale did not start: {exc}\n--- {self.log_path} ---\n"
                        f"{process.tail(self.log_path)}"
                    ) from exc
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop Radicale; remove the directory if it was a temporary one. Idempotent."""
        if self._proc is not None:
            process.terminate(self._proc, timeout=10)
            self._proc = None
        process.untrack(self)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return process.tail(self.log_path, lines)

    def describe(self) -> dict[str, object]:
        return {"url": self.url, "port": self.port, "directory": str(self.directory)}

    # -- internals ----------------------------------------------------------------------
    def _write_users(self) -> None:
        lines = "".join(f"{u.login}:{u.password}\n" for u in self.users.values())
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.users_path, lines, mode=0o600)

    def _config(self) -> str:
        tls = ""
        if self.tls_material is not None:
            tls = (
                f"ssl = True\ncertificate = {self.tls_material.cert}\n"
                f"key = {self.tls_material.key}\n"
            )
        return (
            "# generated by tests/servers/radicale.py; do not edit\n"
            f"[server]\nhosts = {self.host}:{self.port}\n{tls}"
            f"[auth]\ntype = htpasswd\nhtpasswd_filename = {self.users_path}\n"
            "htpasswd_encryption = plain\nhtpasswd_cache = False\ndelay = 0\n"
            "[rights]\ntype = owner_only\n"
            f"[storage]\nfilesystem_folder = {self.directory / 'collections'}\n"
            "[web]\ntype = none\n"
            "[logging]\nlevel = info\nmask_passwords = True\n"
        )

    def _answers_http(self) -> bool:
        if self.tls_material is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=2, context=self.tls_material.client_context()
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            conn.request("OPTIONS", "/")
            return conn.getresponse().status < 500
        except OSError:
            return False
        finally:
            conn.close()
