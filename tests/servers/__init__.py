"""Real servers for tests and the demo, started on 127.0.0.1 high ports in throwaway dirs.

What it is for: ``DovecotServer`` (IMAP/POP3/LMTP), ``SmtpServer`` (aiosmtpd relay in front
of Dovecot's LMTP), ``RadicaleServer`` (CalDAV/CardDAV), ``fresh_database`` (PostgreSQL)
and ``ServerStack`` (all of them). pytest fixtures live in ``tests.servers.fixtures``;
``python -m tests.servers --dir DIR [--tls]`` runs the stack for a demo.

What it must never do: fake a server that can run here, or leave processes behind.
Names are imported lazily (PEP 562) so that the relay process, which imports a submodule,
does not pay for SQLAlchemy, psycopg and cryptography at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.servers.dovecot import DovecotServer
    from tests.servers.dovecot_users import MailUser
    from tests.servers.postgres import fresh_database
    from tests.servers.process import ServerStartError
    from tests.servers.radicale import DavUser, RadicaleServer
    from tests.servers.smtp import SmtpFault, SmtpServer, SmtpStage, SpooledMessage
    from tests.servers.stack import ServerStack
    from tests.servers.tls import TlsMaterial, make_tls_material

_WHERE = {
    "DavUser": "radicale",
    "DovecotServer": "dovecot",
    "MailUser": "dovecot_users",
    "RadicaleServer": "radicale",
    "ServerStack": "stack",
    "ServerStartError": "process",
    "SmtpFault": "smtp",
    "SmtpServer": "smtp",
    "SmtpStage": "smtp",
    "SpooledMessage": "smtp",
    "TlsMaterial": "tls",
    "fresh_database": "postgres",
    "make_tls_material": "tls",
}

__all__ = [
    "DavUser",
    "DovecotServer",
    "MailUser",
    "RadicaleServer",
    "ServerStack",
    "ServerStartError",
    "SmtpFault",
    "SmtpServer",
    "SmtpStage",
    "SpooledMessage",
    "TlsMaterial",
    "fresh_database",
    "make_tls_material",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
