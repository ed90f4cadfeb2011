"""The embedded runtime: IDLE pushes make new mail appear within seconds, not a poll."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from crmsync.crm.mailboxes import update_mailbox
from crmsync.crm.models import Email, Mailbox
from crmsync.crm.settings import TrackingPreferences
from crmsync.runtime.embedded import EmbeddedRuntime
from crmsync.sync.check_enable import check_and_enable
from tests.integration.conftest import Connected, message


@pytest.fixture
def running(connected: Connected) -> Iterator[EmbeddedRuntime]:
    runtime = EmbeddedRuntime(connected.store, connected.box, tick=0.5)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runtime.run(stop),))
    thread.start()
    yield runtime
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    assert not thread.is_alive()


def _wait_for(connected: Connected, subject: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with connected.store.transaction() as session:
            if session.scalar(select(Email.id).where(Email.subject == subject)):
                return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{subject!r} not tracked within {seconds}s")


def test_idle_push_tracks_new_mail_within_seconds(
    connected: Connected, running: EmbeddedRuntime
) -> None:
    connected.add_mailbox("ann", preferences=TrackingPreferences(track_scope="all"))
    running.wake(connected.mailboxes["ann"])
    connected.deliver(["ann"], message(subject="first"))
    _wait_for(connected, "first", 30)  # the first pass, and the watcher starting
    deadline = time.monotonic() + 30
    while connected.mailboxes["ann"] not in running.watchers and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # let the watcher enter IDLE
    connected.deliver(["ann"], message(subject="pushed"))
    # The profile polls every 60 s: only IDLE can make this arrive in a few seconds.
    assert _wait_for(connected, "pushed", 10) < 10


def test_a_watcher_follows_a_changed_password(connected: Connected) -> None:
    mailbox_id = connected.add_mailbox("ann")
    runtime = EmbeddedRuntime(connected.store, connected.box)
    runtime._refresh_watchers()
    first = runtime.watchers[mailbox_id]
    try:
        runtime._refresh_watchers()  # nothing changed: the same watcher goes on
        assert runtime.watchers[mailbox_id] is first

        connected.dovecot.add_user(connected.users["ann"].name, "a-new-password")
        with connected.store.transaction() as session:
            mailbox = session.get(Mailbox, mailbox_id)
            assert mailbox is not None
            update_mailbox(
                session, connected.admin(), mailbox, {"password": "a-new-password"}, connected.box
            )
        # Test & Enable again, all between two refreshes (they run once a minute).
        assert check_and_enable(connected.store, connected.box, mailbox_id).ok
        runtime._refresh_watchers()

        second = runtime.watchers[mailbox_id]
        assert second is not first
        assert second.credentials.password == "a-new-password"
        assert first.stopping.is_set()  # it ends when its IDLE next returns
    finally:
        for watcher in runtime.watchers.values():
            watcher.stop()
