"""Fetch and prepare the next batches while the current one is being stored.

What it is for: an incoming pass has three kinds of work per batch — waiting on the mail
server, CPU in parser processes (sync/prepare.py) and a transaction — and done one after
another each waits for the others. ``ahead`` runs the fetching (the connector's
iterator) and the start of preparation in a thread of its own, up to ``depth`` batches
ahead of the engine, which meanwhile stores and commits. Threads are enough here: the
fetch thread mostly waits on a socket and the parser processes, both without the GIL.

    fetch thread:  fetch 1 ─ fetch 2 ─ fetch 3 ─ (waits: depth batches ahead) ─ fetch 4
    parsers:          prepare 1 ─ prepare 2 ─ prepare 3 ──────────────────────── ...
    engine:                    store+commit 1 ─ store+commit 2 ─ store+commit 3 ─ ...

What it must never do: use the connection from two threads at once (only the fetch
thread touches it until ``ahead`` returns), swallow an error (a fetch error is raised in
the engine's thread, where it would have been raised without the overlap), or leave its
thread running after the caller stops (it is told to stop and joined).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

Batch = TypeVar("Batch")
Started = TypeVar("Started")

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.1


class _End:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def ahead(
    batches: Iterator[Batch],
    start: Callable[[Batch], Started],
    *,
    depth: int = 2,
    abandon: Callable[[Started], None] | None = None,
) -> Iterator[Started]:
    """Yield ``start(batch)`` for each batch, computed in a thread up to ``depth`` ahead.

    ``start`` should hand long work to other processes and return at once (a
    ``PendingBatch``); the caller waits for it when it gets there. When the caller stops
    early, ``abandon`` is called for each batch started but never handed over (to clean
    up what its start left behind).
    """
    handoff: queue.Queue[Started | _End | _Failed] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Started | _End | _Failed) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        if not isinstance(item, _End | _Failed):
            _abandon(abandon, item)
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(start(batch)):
                    return
            put(_End())
        except BaseException as exc:  # handed to the engine's thread, raised there
            put(_Failed(exc))

    thread = threading.Thread(target=produce, name="incoming-fetch", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
        while not handoff.empty():
            left = handoff.get_nowait()
            if not isinstance(left, _End | _Failed):
                _abandon(abandon, left)


def _abandon(abandon: Callable[[Started], None] | None, item: Started) -> None:
    if abandon is None:
        return
    try:
        abandon(item)
    except Exception:  # cleaning up must not hide why the caller stopped
        log.exception("could not clean up a batch fetched ahead")
