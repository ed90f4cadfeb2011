"""crmsync: server-side synchronization between an organisation's mail systems and its CRM."""

__version__ = "0.1.0"
