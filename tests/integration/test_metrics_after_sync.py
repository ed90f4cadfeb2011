"""After real syncs against Dovecot: /metrics counts what was fetched and tracked, labelled
by protocol and profile and never by person, and the pass statistics hold the passes —
push latency included when IDLE triggered the pass."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.core.types import Channel
from crmsync.crm.models import SyncPass
from crmsync.crm.settings import TrackingPreferences
from crmsync.metrics import SyncMetrics
from crmsync.runtime.embedded import EmbeddedRuntime
from tests.integration.conftest import Connected, message

pytestmark = pytest.mark.integration

TOKEN = "scrape-token-for-the-test"


@pytest.fixture
def app(connected: Connected) -> FastAPI:
    settings = Settings(
        data_dir=connected.store.blobs.root.parent,
        secret_key=connected.secret_key,
        metrics_token=TOKEN,
    )
    return create_app(settings, connected.store, connected.box)


def scrape(app: FastAPI) -> str:
    with TestClient(app) as http:
        response = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return response.text


def values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_a_sync_shows_in_metrics_and_in_the_pass_statistics(
    connected: Connected, app: FastAPI
) -> None:
    metrics: SyncMetrics = app.state.metrics
    connected.add_mailbox("ann", preferences=TrackingPreferences(track_scope="all"))
    for subject in ("one", "two", "three"):
        connected.deliver(["ann"], message(subject=subject))

    report = connected.sync("ann", metrics=metrics)
    assert report.tracked == 3

    text = scrape(app)
    fetched = values(text, "crmsync_messages_fetched_total")
    tracked = values(text, "crmsync_messages_tracked_total")
    assert fetched == [({"protocol": "imap", "profile": "Dovecot"}, 3.0)]
    assert tracked == [({"protocol": "imap", "profile": "Dovecot"}, 3.0)]
    durations = values(text, "crmsync_sync_pass_duration_seconds_count")
    assert (
        {"protocol": "imap", "channel": "incoming", "profile": "Dovecot", "outcome": "ok"},
        1.0,
    ) in durations
    channels = values(text, "crmsync_mailbox_channels")
    assert any(
        labels["channel"] == "incoming" and labels["status"] == "success" and value >= 1
        for labels, value in channels
    )
    # Nobody's address or login is a label value (or anywhere else in the text).
    assert "@" not in text
    assert connected.users["ann"].name not in text

    with connected.store.transaction() as session:
        passes = session.scalars(
            select(SyncPass).where(SyncPass.mailbox_id == connected.mailboxes["ann"])
        ).all()
    incoming = [row for row in passes if row.channel is Channel.INCOMING]
    assert [(row.protocol, row.fetched, row.tracked, row.error_code) for row in incoming] == [
        ("imap", 3, 3, None)
    ]
    assert incoming[0].profile_id == connected.profile_id
    assert incoming[0].push_latency_seconds is None  # a pass nobody pushed


@pytest.fixture
def running(connected: Connected, app: FastAPI) -> Iterator[EmbeddedRuntime]:
    runtime = EmbeddedRuntime(connected.store, connected.box, tick=0.5, metrics=app.state.metrics)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runtime.run(stop),))
    thread.start()
    yield runtime
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    assert not thread.is_alive()


def _pushed_passes(connected: Connected) -> list[float]:
    with connected.store.transaction() as session:
        return [
            float(latency)
            for latency in session.scalars(
                select(SyncPass.push_latency_seconds).where(
                    SyncPass.push_latency_seconds.is_not(None)
                )
            )
        ]


def test_a_pass_an_idle_notice_triggered_records_its_push_latency(
    connected: Connected, app: FastAPI, running: EmbeddedRuntime
) -> None:
    mailbox_id = connected.add_mailbox("ann", preferences=TrackingPreferences(track_scope="all"))
    running.wake(mailbox_id)
    deadline = time.monotonic() + 30
    while mailbox_id not in running.watchers and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # let the watcher enter IDLE
    connected.deliver(["ann"], message(subject="pushed"))
    deadline = time.monotonic() + 15
    while not _pushed_passes(connected) and time.monotonic() < deadline:
        time.sleep(0.1)

    latencies = _pushed_passes(connected)
    assert latencies, "no pass recorded a push latency"
    assert 0 <= latencies[0] < 10
    counts = values(scrape(app), "crmsync_push_latency_seconds_count")
    assert counts == [({"protocol": "imap", "profile": "Dovecot"}, float(len(latencies)))]
