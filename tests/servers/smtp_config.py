"""The configuration file of the SMTP relay process, shared by the relay and its controller.

What it is for: ``SmtpServer`` (test process) writes it, ``smtp_relay`` (relay process)
reads it. Kept apart from ``smtp_relay.py`` so the test process never imports aiosmtpd.

What it must never do: carry anything but paths, ports and names (no secrets: users and
passwords stay in the users file that the relay re-reads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RelayConfig:
    host: str
    port: int
    smtps_port: int | None
    hostname: str
    lmtp_host: str
    lmtp_port: int
    users_file: Path
    local_domains: tuple[str, ...]
    spool_dir: Path
    faults_file: Path
    ready_file: Path
    tls_cert: Path | None
    tls_key: Path | None
    # An on-premises relay that trusts its clients' addresses (Postfix "mynetworks"): it
    # offers no AUTH and relays for anyone who can connect (here: loopback only).
    trusted_relay: bool = False

    @classmethod
    def load(cls, path: Path) -> RelayConfig:
        data: dict[str, Any] = json.loads(path.read_text())
        paths = ("users_file", "spool_dir", "faults_file", "ready_file", "tls_cert", "tls_key")
        for key in paths:
            data[key] = Path(data[key]) if data.get(key) else None
        data["local_domains"] = tuple(d.lower() for d in data["local_domains"])
        return cls(**data)

    def dump(self) -> str:
        return json.dumps(
            {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self).items()}, indent=2
        )
