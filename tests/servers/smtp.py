"""Controller for the SMTP relay process (``smtp_relay.py``) that fronts Dovecot's LMTP.

What it is for: starting and stopping the relay (a separate process, so a hung handler can
never block the test process), programming its faults, and reading the spool of mail sent
to external domains.

What it must never do: run the relay (or import aiosmtpd) in the test process, wait
without a deadline, or leave the relay running (SIGTERM, then SIGKILL of its process
group; see ``process.py``).

    smtp = SmtpServer.in_front_of(dovecot).start()
    smtp.set_faults([SmtpFault(SmtpStage.RCPT, 451, "4.7.1 try later")])
    ...                      # first transaction: 451 at RCPT; the next one: 250
    smtp.external_messages() # [SpooledMessage(mail_from=..., rcpt_tos=[...], raw=b"...")]
    smtp.stop()
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Self

from tests.servers import process
from tests.servers.passwd import write_atomically
from tests.servers.smtp_config import RelayConfig
from tests.servers.tls import TlsMaterial

if TYPE_CHECKING:
    from tests.servers.dovecot import DovecotServer


class SmtpStage(StrEnum):
    """Where in a transaction a fault answers instead of the relay."""

    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"


@dataclass(frozen=True)
class SmtpFault:
    """One programmed reply, e.g. ``SmtpFault(SmtpStage.RCPT, 451, "4.7.1 try later")``.

    ``rcpt`` limits a RCPT fault to one recipient address.
    """

    at: SmtpStage
    code: int
    text: str = ""
    rcpt: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"at": self.at.value, "code": self.code, "text": self.text, "rcpt": self.rcpt}


@dataclass(frozen=True)
class SpooledMessage:
    """A message the relay accepted for an external domain (not delivered anywhere)."""

    queue_id: str
    mail_from: str
    rcpt_tos: list[str]
    authenticated_as: str | None
    raw: bytes
    path: Path


class SmtpServer(process.ServerLifecycle):
    host = process.LOOPBACK

    def __init__(
        self,
        *,
        lmtp_port: int,
        users_file: Path,
        tls: TlsMaterial | None = None,
        local_domains: Sequence[str] = ("example.test",),
        directory: Path | None = None,
        hostname: str = "mx.example.test",
        startup_timeout: float = 20.0,
        trusted_relay: bool = False,
    ) -> None:
        self.lmtp_port = lmtp_port
        self.users_file = users_file
        self.tls_material = tls
        self.local_domains = tuple(local_domains)
        self.hostname = hostname
        self.startup_timeout = startup_timeout
        self.trusted_relay = trusted_relay  # no AUTH offered; relays for every client
        self._owns_directory = directory is None
        self.directory = (directory or Path(tempfile.mkdtemp(prefix="crmsync-smtp-"))).resolve()
        self.port = 0
        self.smtps_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def in_front_of(cls, dovecot: DovecotServer, **kwargs: object) -> SmtpServer:
        """A relay delivering to ``dovecot``'s LMTP, sharing its users and TLS material."""
        return cls(
            lmtp_port=dovecot.lmtp_port,
            users_file=dovecot.users_path,
            tls=dovecot.tls_material,
            local_domains=(dovecot.domain,),
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def spool_dir(self) -> Path:
        return self.directory / "spool"

    @property
    def faults_path(self) -> Path:
        return self.directory / "faults.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "smtp.log"

    @property
    def ca_cert(self) -> Path | None:
        return self.tls_material.ca_cert if self.tls_material else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        ready_file = self.directory / "ready.json"
        ready_file.unlink(missing_ok=True)
        config = RelayConfig(
            host=self.host,
            port=self.port,  # 0 on first start: the relay binds and reports its port
            smtps_port=(self.smtps_port or 0) if self.tls_material else None,
            hostname=self.hostname,
            lmtp_host=process.LOOPBACK,
            lmtp_port=self.lmtp_port,
            users_file=self.users_file,
            local_domains=self.local_domains,
            spool_dir=self.spool_dir,
            faults_file=self.faults_path,
            ready_file=ready_file,
            tls_cert=self.tls_material.cert if self.tls_material else None,
            tls_key=self.tls_material.key if self.tls_material else None,
            trusted_relay=self.trusted_relay,
        )
        config_path = self.directory / "relay.json"
        config_path.write_text(config.dump())
        self.set_faults([])
        process.track(self)
        self._proc = proc = process.spawn(
            process.python_module_argv("tests.servers.smtp_relay", "--config", str(config_path)),
            log_path=self.log_path,
        )

        def exited() -> str | None:
            code = proc.poll()
            return None if code is None else f"relay exited with status {code}"

        try:
            process.wait_until(
                ready_file.exists, timeout=self.startup_timeout, what="SMTP relay", abort=exited
            )
        except TimeoutError as exc:
            self.stop()
            raise process.ServerStartError(
                f"SMTP relay did not start: {exc}\n--- {self.log_path} ---\n"
                f"{process.tail(self.log_path)}"
            ) from exc
        ready = json.loads(ready_file.read_text())
        self.port, self.smtps_port = int(ready["port"]), ready["smtps_port"]
        return self

    def stop(self) -> None:
        """Stop the relay; remove the directory if it was a temporary one. Idempotent."""
        if self._proc is not None:
            process.terminate(self._proc, timeout=10)
            self._proc = None
        process.untrack(self)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- faults and spool ---------------------------------------------------------------
    def set_faults(self, faults: Sequence[SmtpFault | None]) -> None:
        """Replace the fault queue; one entry is consumed per transaction (None = no fault)."""
        queue = [f.to_json() if f is not None else None for f in faults]
        write_atomically(self.faults_path, json.dumps(queue))

    def pending_faults(self) -> int:
        try:
            return len(json.loads(self.faults_path.read_text() or "[]"))
        except FileNotFoundError:
            return 0

    def external_messages(self) -> list[SpooledMessage]:
        """Messages for external domains, oldest first."""
        if not self.spool_dir.exists():
            return []
        messages = []
        emls = sorted(self.spool_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        for eml in emls:
            meta = json.loads(eml.with_suffix(".json").read_text())
            messages.append(
                SpooledMessage(
                    queue_id=meta["queue_id"],
                    mail_from=meta["mail_from"],
                    rcpt_tos=list(meta["rcpt_tos"]),
                    authenticated_as=meta["authenticated_as"],
                    raw=eml.read_bytes(),
                    path=eml,
                )
            )
        return messages

    def clear_spool(self) -> None:
        shutil.rmtree(self.spool_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return process.tail(self.log_path, lines)

    def describe(self) -> dict[str, object]:
        return {
            "host": self.host,
            "smtp": self.port,
            "smtps": self.smtps_port,
            "starttls": self.tls_material is not None,
            "spool_dir": str(self.spool_dir),
            "faults_file": str(self.faults_path),
            "directory": str(self.directory),
        }
