"""The JSON state shared by the test OAuth2 server process and its controller.

What it is for: ``OAuthServer`` (the controller, in the test process) registers clients and
grants refresh tokens; ``oauth_server.py`` (the server process) issues access tokens and
rotates refresh tokens. Both change one file, ``DIR/state.json``, inside ``transaction``:
an exclusive ``flock`` on ``DIR/state.lock``, read, change, write atomically (temporary
file + rename), unlock. The server re-reads the file on every request, so a change made
by the controller applies to the next request.

What it must never do: hold anything but throwaway test secrets, write the file in place
(a reader could see half of it), or import anything outside the standard library (the
server process imports it).

Shape (times are Unix seconds)::

    {"clients": {"crmsync": {"secret": "s3cret"}},            # secret null = public client
     "introspection_clients": {"dovecot": "…"},               # Basic auth for /introspect
     "refresh_tokens": {"rt-…": {"login": "a@example.test", "client_id": "crmsync",
                                 "scope": "mail", "revoked": false}},
     "access_tokens": {"at-…": {"login": "a@example.test", "client_id": "crmsync",
                                "scope": "mail", "refresh_token": "rt-…",
                                "issued_at": 1700000000, "expires_at": 1700003600,
                                "revoked": false}},
     "settings": {"access_token_lifetime": 3600, "rotate_refresh_tokens": false},
     "faults": [{"status": 503, "error": null, "retry_after": "7"}]}
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

State = dict[str, Any]


def empty_state(*, access_token_lifetime: int | bool, rotate_refresh_tokens: int | bool) -> State:
    return {
        "clients": {},
        "introspection_clients": {},
        "refresh_tokens": {},
        "access_tokens": {},
        "settings": {
            "access_token_lifetime": int(access_token_lifetime),
            "rotate_refresh_tokens": bool(rotate_refresh_tokens),
        },
        "faults": [],
    }


def create(path: Path, state: State) -> None:
    """Write a fresh state file (atomically) unless one exists already."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _lock_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.lock")


@contextmanager
def transaction(path: Path) -> Iterator[State]:
    """Yield the state under an exclusive lock; write it back when the block succeeds."""
    with _lock_path(path).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state: State = json.loads(path.read_text())
            yield state
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read(path: Path) -> State:
    """A consistent snapshot (taken under the lock, so never half a write)."""
    with _lock_path(path).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            state: State = json.loads(path.read_text())
            return state
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
