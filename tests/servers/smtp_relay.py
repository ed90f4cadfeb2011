"""A small real MTA for tests: aiosmtpd in front of Dovecot's LMTP, run as its own process.

    python -m tests.servers.smtp_relay --config DIR/relay.json

What it is for: integration tests and the demo send mail through a genuine SMTP server
(RFC 5321) with EHLO, AUTH PLAIN/LOGIN (RFC 4954), STARTTLS (RFC 3207) and, in TLS mode,
implicit TLS (RFC 8314). Mail for a local domain is delivered to Dovecot over LMTP
(RFC 2033) before the final 250; mail for any other domain is "sent" by writing it to the
spool directory as ``<id>.eml`` plus ``<id>.json`` (envelope), where tests read it.

Rules, as a real MTA applies them:
- local recipients must exist in the users file (else 550 5.1.1);
- other domains only for authenticated clients (else 554 5.7.1 relay denied);
- AUTH is checked against the users file, re-read on every attempt (no TLS required).
- with ``trusted_relay`` (a relay trusting its network, as Postfix's ``mynetworks``): no
  AUTH is offered or accepted, and every client may send to any domain.

Fault injection: before each transaction (at MAIL FROM) the first entry of the JSON list in
``faults_file`` is popped; ``{"at": "RCPT", "code": 451, "text": "4.7.1 try later"}``
makes that transaction answer 451 at RCPT (optionally only for ``"rcpt": ADDRESS``), and
``null`` means "no fault this time", so ``[null, {"at": "DATA", ...}]`` fails the second.

What it must never do: listen beyond 127.0.0.1, deliver anywhere but the configured LMTP
port and the spool directory, or keep running after SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import hmac
import json
import os
import signal
import smtplib
import ssl
import sys
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.passwd import read_passwords, write_atomically
from tests.servers.smtp_config import RelayConfig


@dataclass(frozen=True)
class Fault:
    at: str
    code: int
    text: str
    rcpt: str | None = None

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


def pop_fault(path: Path) -> Fault | None:
    """Pop the first queued fault (``None`` entries mean "behave normally this time")."""
    try:
        queue = json.loads(path.read_text() or "[]")
    except FileNotFoundError:
        return None
    if not queue:
        return None
    entry = queue.pop(0)
    write_atomically(path, json.dumps(queue))
    if entry is None:
        return None
    return Fault(
        at=entry["at"].upper(),
        code=int(entry["code"]),
        text=entry.get("text", ""),
        rcpt=entry.get("rcpt"),
    )


def log(message: str) -> None:
    print(f"smtp_relay: {message}", file=sys.stderr, flush=True)


class RelayHandler:
    """aiosmtpd handler: hooks for MAIL, RCPT, DATA plus the AUTH callback."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._faults: weakref.WeakKeyDictionary[Envelope, Fault] = weakref.WeakKeyDictionary()

    def _is_local(self, address: str) -> bool:
        return address.rpartition("@")[2].lower() in self.config.local_domains

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode(errors="replace")
        expected = read_passwords(self.config.users_file).get(login)
        given = auth_data.password.decode(errors="replace")
        ok = expected is not None and hmac.compare_digest(expected, given)
        log(f"AUTH {mechanism} {login}: {'ok' if ok else 'refused'}")
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        if self.config.trusted_relay:
            return [line for line in responses if not line[4:].upper().startswith("AUTH")]
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = pop_fault(self.config.faults_file)
        if fault is not None:
            log(f"fault for this transaction: {fault}")
            if fault.at == "MAIL":
                return fault.reply
            self._faults[envelope] = fault
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self._faults.get(envelope)
        if fault and fault.at == "RCPT" and (fault.rcpt is None or fault.rcpt == address):
            return fault.reply
        if self._is_local(address):
            known = {login.lower() for login in read_passwords(self.config.users_file)}
            if address.lower() not in known:
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        elif not session.authenticated and not self.config.trusted_relay:
            return f"554 5.7.1 <{address}>: Relay access denied"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._faults.pop(envelope, None)
        if fault and fault.at == "DATA":
            return fault.reply
        queue_id = uuid.uuid4().hex[:12].upper()
        raw = self._received(server, session, envelope, queue_id) + (
            envelope.original_content or b""
        )
        local = [r for r in envelope.rcpt_tos if self._is_local(r)]
        external = [r for r in envelope.rcpt_tos if not self._is_local(r)]
        if local:
            try:
                refused = await asyncio.get_running_loop().run_in_executor(
                    None, self._lmtp, envelope.mail_from or "", local, raw
                )
            except (smtplib.SMTPException, OSError) as exc:
                log(f"{queue_id}: LMTP delivery failed: {exc!r}")
                return "451 4.3.0 Local delivery failed, try again later"
            if refused:
                log(f"{queue_id}: LMTP refused {refused}")
        if external:
            self._spool(queue_id, session, envelope, external, raw)
        log(f"{queue_id}: from={envelope.mail_from} local={local} external={external}")
        return f"250 2.0.0 OK queued as {queue_id}"

    def _received(self, server: SMTP, session: Session, envelope: Envelope, qid: str) -> bytes:
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        protocol = "ESMTP" + ("S" if tls else "") + ("A" if session.authenticated else "")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        date = email.utils.formatdate(localtime=False)
        line = (
            f"Received: from {session.host_name or 'unknown'} ([{peer}])\r\n"
            f"\tby {self.config.hostname} (crmsync test relay) with {protocol} id {qid};\r\n"
            f"\t{date}\r\n"
        )
        return line.encode()

    def _lmtp(self, mail_from: str, rcpts: list[str], raw: bytes) -> dict[str, tuple[int, bytes]]:
        # LMTP answers DATA once per recipient (RFC 2033 §4.2), but smtplib reads a
        # single reply; one transaction per recipient keeps the replies in step.
        refused: dict[str, tuple[int, bytes]] = {}
        with smtplib.LMTP(self.config.lmtp_host, self.config.lmtp_port, timeout=30) as lmtp:
            for rcpt in rcpts:
                refused.update(lmtp.sendmail(mail_from, [rcpt], raw))
        return refused

    def _spool(
        self, qid: str, session: Session, envelope: Envelope, rcpts: list[str], raw: bytes
    ) -> None:
        spool = self.config.spool_dir
        spool.mkdir(parents=True, exist_ok=True)
        meta = {
            "queue_id": qid,
            "mail_from": envelope.mail_from,
            "rcpt_tos": rcpts,
            "authenticated_as": session.auth_data if session.authenticated else None,
        }
        (spool / f"{qid}.json").write_text(json.dumps(meta, indent=2))
        write_eml = spool / f".{qid}.eml.tmp"
        write_eml.write_bytes(raw)
        os.replace(write_eml, spool / f"{qid}.eml")  # .eml appears last: readers see whole files


def _tls_context(config: RelayConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


async def serve(config: RelayConfig) -> None:
    handler = RelayHandler(config)
    tls = _tls_context(config)
    loop = asyncio.get_running_loop()

    def factory(starttls: ssl.SSLContext | None) -> SMTP:
        return SMTP(
            handler,
            hostname=config.hostname,
            ident="crmsync test relay",
            tls_context=starttls,
            require_starttls=False,
            auth_required=False,
            auth_require_tls=False,
            authenticator=handler.authenticate,
            auth_exclude_mechanism=("LOGIN", "PLAIN") if config.trusted_relay else None,
            decode_data=False,
            loop=loop,
        )

    plain = await loop.create_server(lambda: factory(tls), config.host, config.port)
    servers = [plain]
    ready: dict[str, int | None] = {"port": plain.sockets[0].getsockname()[1], "smtps_port": None}
    if tls is not None and config.smtps_port is not None:
        implicit = await loop.create_server(
            lambda: factory(None), config.host, config.smtps_port, ssl=tls
        )
        servers.append(implicit)
        ready["smtps_port"] = implicit.sockets[0].getsockname()[1]
    write_atomically(config.ready_file, json.dumps({**ready, "pid": os.getpid()}))
    log(f"listening {ready}")

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    await asyncio.wait_for(asyncio.gather(*(s.wait_closed() for s in servers)), timeout=5)
    log("stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(RelayConfig.load(args.config)))


if __name__ == "__main__":
    main()
