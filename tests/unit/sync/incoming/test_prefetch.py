"""``ahead``: batches in order, errors where they would have been, no thread left over."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from crmsync.core.errors import ErrorCode, SyncError
from crmsync.sync.incoming.prefetch import ahead


def _fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "incoming-fetch"]


def test_every_batch_arrives_once_in_order() -> None:
    assert list(ahead(iter(range(50)), lambda n: n * 10)) == [n * 10 for n in range(50)]
    assert not _fetch_threads()


def test_a_fetch_error_reaches_the_engine_after_the_batches_before_it() -> None:
    def batches() -> Iterator[int]:
        yield 1
        yield 2
        raise SyncError(ErrorCode.CONNECTION_LOST, "server went away")

    stream = ahead(batches(), lambda n: n)
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(SyncError) as raised:
        next(stream)
    assert raised.value.code is ErrorCode.CONNECTION_LOST
    assert not _fetch_threads()


def test_fetching_stays_a_bounded_number_of_batches_ahead() -> None:
    fetched = 0
    consumed = 0
    furthest_ahead = 0
    gate = threading.Semaphore(0)

    def batches() -> Iterator[int]:
        nonlocal fetched
        for n in range(20):
            fetched += 1
            yield n

    for _ in ahead(batches(), lambda n: n, depth=2):
        gate.acquire(timeout=0.05)  # let the fetch thread run as far as it may
        furthest_ahead = max(furthest_ahead, fetched - consumed)
        consumed += 1
    # the one being stored, depth waiting, and one fetched and waiting to be handed over
    assert furthest_ahead <= 2 + 2
    assert consumed == 20


def test_an_engine_that_stops_early_stops_the_fetching() -> None:
    fetched: list[int] = []

    def batches() -> Iterator[int]:
        for n in range(1000):
            fetched.append(n)
            yield n

    stream = ahead(batches(), lambda n: n, depth=2)
    assert next(stream) == 0
    stream.close()  # e.g. the engine's transaction failed
    assert not _fetch_threads()
    assert len(fetched) <= 4


def test_batches_started_but_never_handed_over_are_abandoned() -> None:
    started: list[int] = []
    abandoned: list[int] = []

    def start(n: int) -> int:
        started.append(n)
        return n

    stream = ahead(iter(range(100)), start, depth=2, abandon=abandoned.append)
    consumed = [next(stream), next(stream)]
    time.sleep(0.3)  # the fetch thread fills the hand-over queue
    stream.close()  # the engine stopped: e.g. its transaction failed
    assert not _fetch_threads()
    assert sorted(consumed + abandoned) == started  # each batch: stored or cleaned up
    assert abandoned
