"""The incoming engine: IMAP and POP3 mail into the CRM, each message exactly once.

- ``engine``       the channel's protocol work for the runner; ``sync_incoming``
- ``imap``, ``pop3`` one pass over INBOX from its cursor / over the UIDL listing
- ``ingest``       fetched batches → parsed → decided (tracking/) → stored, per batch
- ``gather``       what the database knows that decides a batch (tracking.decide.Known)
- ``fates``        a mailbox's policy for tracking.decide, and a fate as the row to store
- ``parser_pool``  parser processes, so a hostile message cannot take the engine down
- ``prefetch``     the next batch fetched while this one is parsed and stored
- ``bounces``      a bounce of CRM email marks the original, and is not tracked
"""

from crmsync.sync.incoming.engine import sync_incoming
from crmsync.sync.incoming.options import IncomingOptions, IncomingReport

__all__ = ["IncomingOptions", "IncomingReport", "sync_incoming"]
