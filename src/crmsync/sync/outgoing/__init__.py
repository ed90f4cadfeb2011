"""The outgoing engine: CRM email sent through the mailbox's server, never twice.

- ``engine``     the channel's protocol work for the runner; ``sync_outgoing``
- ``decide``     pure decisions: what an SMTP answer or a Sent-folder lookup means
- ``send``       claim, compose and record one email around its SMTP transaction
- ``verify``     emails whose fate is unknown, looked up in the Sent folder
- ``sent_copy``  the copy APPENDed to the Sent folder
- ``schedule``   which mailboxes have email due
- ``io``         the SMTP and Sent-folder sessions the engine needs (connector Protocols)
"""

from crmsync.sync.outgoing.engine import (
    OutgoingOptions,
    OutgoingReport,
    due_outgoing,
    pending_by_mailbox,
    sync_outgoing,
)

__all__ = [
    "OutgoingOptions",
    "OutgoingReport",
    "due_outgoing",
    "pending_by_mailbox",
    "sync_outgoing",
]
