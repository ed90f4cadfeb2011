"""The IDLE watcher without a server: a scripted fake connection and a stop event that
records each backoff instead of sleeping it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from crmsync.connectors.base import IdleOutcome
from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.core.errors import ErrorCode, SyncError
from crmsync.runtime.push import MAX_BACKOFF_SECONDS, IdleWatcher

MAILBOX = uuid.uuid4()
ENDPOINT = Endpoint("imap.test", 993, Security.IMPLICIT_TLS)
CREDENTIALS = Credentials("user", "secret")

# One step of a session: True/False is what idle_wait reports, an exception is raised.
Step = bool | Exception


class FakeConnection:
    """What push.py calls on a connection, and nothing more."""

    def __init__(self, steps: list[Step], on_exhausted: Callable[[], None]) -> None:
        self.steps = steps
        self.on_exhausted = on_exhausted
        self.capability_names = frozenset({"IMAP4REV1", "IDLE"})
        self.selected: list[tuple[str, bool]] = []
        self.closed = False

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closed = True

    def capabilities(self) -> frozenset[str]:
        return self.capability_names

    def select_folder(self, name: str, *, readonly: bool = False) -> None:
        self.selected.append((name, readonly))

    def interrupt(self) -> None:
        """Nothing to interrupt: the scripted steps never block."""

    def idle_wait(self, timeout: float) -> IdleOutcome:
        if not self.steps:
            self.on_exhausted()
            return IdleOutcome(changed=False)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return IdleOutcome(changed=step)


class FakeServer:
    """Hands out scripted connections in order; an exception in the script is a failed
    connect. When the script runs out, the watcher is stopped."""

    def __init__(self, script: list[list[Step] | Exception]) -> None:
        self.script = script
        self.connections: list[FakeConnection] = []
        self.watcher: IdleWatcher | None = None

    def stop(self) -> None:
        assert self.watcher is not None
        self.watcher.stop()

    def connect(self, endpoint: Endpoint, credentials: Credentials) -> Any:
        assert (endpoint, credentials) == (ENDPOINT, CREDENTIALS)
        if not self.script:
            self.stop()
            raise SyncError(ErrorCode.CONNECTION_LOST)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        connection = FakeConnection(item, self.stop)
        self.connections.append(connection)
        return connection


class RecordingStop(threading.Event):
    """A stop event whose waits are recorded and return at once."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return self.is_set()


def watcher_for(server: FakeServer) -> tuple[IdleWatcher, list[tuple[uuid.UUID, datetime | None]]]:
    wakes: list[tuple[uuid.UUID, datetime | None]] = []
    watcher = IdleWatcher(
        MAILBOX,
        ENDPOINT,
        CREDENTIALS,
        lambda mailbox_id, noticed: wakes.append((mailbox_id, noticed)),
        idle_seconds=0.01,
        connect=server.connect,
    )
    watcher.stopping = RecordingStop()
    server.watcher = watcher
    return watcher, wakes


def test_a_change_wakes_the_mailbox_with_the_time_of_the_notice() -> None:
    server = FakeServer([[False, True, False]])
    watcher, wakes = watcher_for(server)
    before = datetime.now(UTC)
    watcher.run()
    after = datetime.now(UTC)
    # The wake-up on connecting has no notice; the change has one, taken when it came.
    assert [mailbox for mailbox, _ in wakes] == [MAILBOX, MAILBOX]
    assert wakes[0][1] is None
    noticed = wakes[1][1]
    assert noticed is not None
    assert noticed.tzinfo is not None
    assert before <= noticed <= after
    (connection,) = server.connections
    assert connection.selected == [("INBOX", True)]
    assert connection.closed


def test_unchanged_idles_wake_nobody() -> None:
    server = FakeServer([[False, False, False]])
    watcher, wakes = watcher_for(server)
    watcher.run()
    assert wakes == [(MAILBOX, None)]


def test_a_dropped_connection_reconnects_with_capped_doubling_backoff() -> None:
    unreachable = SyncError(ErrorCode.HOST_UNREACHABLE)
    failures: list[list[Step] | Exception] = [unreachable] * 10
    lost = SyncError(ErrorCode.CONNECTION_LOST)
    server = FakeServer([[True, lost], *failures, [True, lost], [True]])
    watcher, wakes = watcher_for(server)
    watcher.run()
    stop = watcher.stopping
    assert isinstance(stop, RecordingStop)
    doubling = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    assert MAX_BACKOFF_SECONDS == 300.0
    # Drop, ten failed connects (capped), reconnect resets the backoff, drop again.
    assert stop.waits[:11] == [*doubling, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS]
    assert stop.waits[11] == 1.0
    # Every successful (re)connect wakes the mailbox without a notice time, to catch
    # what arrived while nobody watched; each change carries one.
    notices = [noticed is None for _, noticed in wakes]
    assert notices == [True, False, True, False, True, False]
    assert all(connection.closed for connection in server.connections)


def test_a_bug_in_the_connection_does_not_kill_the_watcher() -> None:
    server = FakeServer([[RuntimeError("bug")], [True]])
    watcher, wakes = watcher_for(server)
    watcher.run()
    assert [noticed is None for _, noticed in wakes] == [True, True, False]


def test_a_server_without_idle_ends_the_watcher_without_waking() -> None:
    server = FakeServer([[True]])
    original = server.connect

    def connect(endpoint: Endpoint, credentials: Credentials) -> Any:
        connection = original(endpoint, credentials)
        connection.capability_names = frozenset({"IMAP4REV1"})
        return connection

    server.connect = connect  # type: ignore[method-assign]
    watcher, wakes = watcher_for(server)
    watcher.run()
    assert watcher.supported is False
    assert wakes == []


def _started(connect: Callable[[Endpoint, Credentials], Any]) -> IdleWatcher:
    watcher = IdleWatcher(
        MAILBOX, ENDPOINT, CREDENTIALS, lambda *_: None, idle_seconds=0.05, connect=connect
    )
    watcher.start()
    return watcher


def test_stop_interrupts_an_idle_at_once() -> None:
    """A watcher told to stop (its mailbox disabled, its password changed, serve shutting
    down) lets its connection go now, not at the end of a two-minute IDLE."""
    idling = threading.Event()

    class Idling(FakeConnection):
        def __init__(self) -> None:
            super().__init__([], lambda: None)
            self.interrupted = threading.Event()

        def interrupt(self) -> None:
            self.interrupted.set()

        def idle_wait(self, timeout: float) -> IdleOutcome:
            idling.set()
            if self.interrupted.wait(timeout):
                raise SyncError(ErrorCode.CONNECTION_LOST)
            return IdleOutcome(changed=False)

    connection = Idling()
    watcher = IdleWatcher(
        MAILBOX,
        ENDPOINT,
        CREDENTIALS,
        lambda *_: None,
        idle_seconds=60.0,
        connect=lambda *_: connection,
    )
    watcher.start()
    assert idling.wait(2)
    started = time.monotonic()
    watcher.stop()
    watcher.join(2.0)
    assert not watcher.is_alive()
    assert time.monotonic() - started < 0.5
    assert connection.closed


def test_a_server_that_drops_every_idle_is_not_reconnected_every_second() -> None:
    """SELECT works, IDLE is dropped at once, again and again (a proxy that cuts idle
    connections): the backoff keeps doubling, because no connection lasted an IDLE."""
    lost = SyncError(ErrorCode.CONNECTION_LOST)
    server = FakeServer([[lost] for _ in range(6)])
    watcher, wakes = watcher_for(server)
    watcher.run()
    stop = watcher.stopping
    assert isinstance(stop, RecordingStop)
    assert stop.waits[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    # Each reconnect still lets the sync look for what arrived meanwhile.
    assert len(wakes) == 6


def test_stop_interrupts_the_backoff() -> None:
    attempted = threading.Event()

    def unreachable(endpoint: Endpoint, credentials: Credentials) -> Any:
        attempted.set()
        raise SyncError(ErrorCode.HOST_UNREACHABLE)

    watcher = _started(unreachable)
    assert attempted.wait(2)
    started = time.monotonic()
    watcher.stop()
    watcher.join(2.0)
    assert not watcher.is_alive()
    # The first backoff is a second; stop must not wait it out.
    assert time.monotonic() - started < 0.5
