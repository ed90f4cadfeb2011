"""Pure tracking decisions for email: parse, filter, correlate, resolve parties, tokens.

The sync engines (``sync/``) do the I/O; this package decides. A unit of incoming work is

    gather   (engine)  fetch raw bytes → ``parse.parse_message``; ask
                       ``correlate.wanted_keys`` what to look up and the address index
                       for every address; one query per kind
    decide   (here)    ``decide.decide``: the cut-off, bounce routing, the message's key
                       (``fingerprint`` tells a reused Message-ID apart), then
                       ``correlate.correlate`` → ``filters.decide`` →
                       ``parties.resolve_parties``: one fate — skip, link, bounce or
                       track — with its ``Why`` (crmsync.core.why)
    execute  (engine)  create or skip the activity, attach files, mark bounces,
                       advance the cursor in the same transaction

Modules:

- ``parse``       raw RFC 5322 bytes → ``ParsedMessage`` under ``ParseLimits``
                  (``headers`` and ``htmltext`` are its helpers)
- ``subjects``    ``normalise_subject``: reply/forward prefixes in many languages removed
- ``token``       CRM tracking tokens in subjects (``CRM:0001234``)
- ``threadindex`` Outlook Thread-Index: conversation GUID, new and child values
- ``decide``      one message's fate from what was gathered: the one decision
- ``fingerprint`` a message's content fingerprint: the same message, or a reused Message-ID
- ``filters``     which email to track (``TrackingScope``), automated mail, block lists
- ``correlate``   In-Reply-To/References → token → Thread-Index → smart matching
- ``parties``     From/To/Cc/Bcc → CRM records
- ``display``     the HTML an email activity shows: nh3-sanitized HTML, or escaped text

Nothing here does I/O, touches the database or the network, reads the clock (``now`` is
passed in) or logs message content. Everything is a function of its inputs and is tested
without any server. It imports only the shared vocabulary (``crmsync.core``): never
crm/, sync/ or connectors/ (an import-linter contract in pyproject.toml says so).
"""
