"""The ``crmsync`` command.

crmsync init | serve | db upgrade | user add | token create      (cli/admin.py)
crmsync profile … | mailbox … | alerts | secrets rotate          (cli/mail.py)
crmsync send once | send sent-copies                              (cli/outgoing.py)

Importing it registers the commands and does nothing else: settings are read, and the
database opened, only when a command runs.
"""

from __future__ import annotations

from crmsync.cli import admin, mail, outgoing  # noqa: F401 - importing registers the commands
from crmsync.cli.common import app


def main() -> None:
    app()


__all__ = ["app", "main"]
