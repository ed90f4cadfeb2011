"""The users file shared by Dovecot (passwd-file) and the SMTP relay.

What it is for: one source of truth for test mail accounts. Dovecot reads it as its passdb
and userdb; the SMTP relay re-reads it for AUTH and to know which local recipients exist.
Line format (Dovecot passwd-file, password in the ``{PLAIN}`` scheme)::

    alice@example.test:{PLAIN}secret:14000:14000::/tmp/.../mail/alice@example.test::

What it must never do: hold real credentials, or write the file in place (a reader could
see half a file) — it writes a temporary file and renames it over the old one.
"""

from __future__ import annotations

import os
from pathlib import Path

PLAIN = "{PLAIN}"


def format_line(login: str, password: str, *, uid: int, gid: int, home: Path) -> str:
    for field in (login, password):
        if ":" in field or "\n" in field:
            raise ValueError(f"':' and newlines cannot appear in a passwd-file field: {field!r}")
    return f"{login}:{PLAIN}{password}:{uid}:{gid}::{home}::"


def read_passwords(path: Path) -> dict[str, str]:
    """``{login: plain password}`` for every well-formed ``{PLAIN}`` line; {} if no file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    passwords: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 2 and fields[1].startswith(PLAIN):
            passwords[fields[0]] = fields[1].removeprefix(PLAIN)
    return passwords


def write_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
