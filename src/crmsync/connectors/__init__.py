"""Protocol I/O only: IMAP, POP3, SMTP, CalDAV, CardDAV, EWS, Graph.

Imports nothing from crmsync.crm and knows nothing of records. Errors are raised as
crmsync.core.errors.SyncError with a catalogue code, mapped once, at this edge.
"""
