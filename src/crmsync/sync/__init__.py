"""Sync engines (incoming, outgoing, folders, appointments/contacts/tasks), cursors,
scheduling and the error catalogue. Engines ask crmsync.tracking for every decision and
crmsync.crm for every write; protocol I/O is crmsync.connectors'."""
