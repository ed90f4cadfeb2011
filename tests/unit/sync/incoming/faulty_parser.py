"""A ``prepare_one`` that misbehaves on request, for the parser-pool tests.

A module of its own so that parser processes can import it by name: a message holding
``X-Test: hang`` never finishes, one holding ``X-Test: crash`` kills its process;
anything else is prepared normally.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from crmsync.sync.incoming.parser_pool import Ready, Unparsed, prepare_one
from crmsync.tracking.parse import ParseLimits


def misbehaving_prepare_one(raw: bytes, limits: ParseLimits, blob_root: Path) -> Ready | Unparsed:
    if b"X-Test: hang" in raw:
        time.sleep(600)
    if b"X-Test: crash" in raw:
        os._exit(3)
    return prepare_one(raw, limits, blob_root)
