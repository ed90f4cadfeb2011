"""How engines run: one embedded asyncio process (here), or Celery workers (later).

Either way the unit of work is the same idempotent function of one mailbox channel, e.g.
``crmsync.sync.incoming.sync_incoming``, guarded by its database lease.
"""
