"""/metrics: off unless configured, a token or an allowed address opens it, the text is
Prometheus's, and no label names a person."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.core.types import ServerType
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import EmailServerProfile, User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics, profile_label
from tests.conftest import Org, _empty, make_org, sqlite_store

TOKEN = "s3cret-scrape-token"


@pytest.fixture(scope="module")
def metrics_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = sqlite_store(tmp_path_factory.mktemp("metrics-store"))
    yield store
    store.dispose()


@pytest.fixture
def metrics_org(metrics_store: Store) -> Iterator[Org]:
    yield make_org(metrics_store)
    _empty(metrics_store)


def client(
    store: Store, tmp_path: Path, address: str = "testclient", **settings: Any
) -> TestClient:
    config = Settings(data_dir=tmp_path, secret_key=SecretBox.generate_key(), **settings)
    return TestClient(create_app(config, store), client=(address, 50000))


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_metrics_are_off_unless_configured(
    metrics_store: Store, metrics_org: Org, tmp_path: Path
) -> None:
    with client(metrics_store, tmp_path) as http:
        assert http.get("/metrics").status_code == 404
        assert http.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def test_the_token_opens_them_and_a_wrong_or_missing_one_does_not(
    metrics_store: Store, metrics_org: Org, tmp_path: Path
) -> None:
    with client(metrics_store, tmp_path, metrics_token=TOKEN) as http:
        assert http.get("/metrics").status_code == 404
        wrong = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 404
        assert http.get("/metrics", headers={"Authorization": TOKEN}).status_code == 404
        right = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert right.headers["content-type"].startswith("text/plain")
    names = {name for name, _, _ in samples(right.text)}
    assert "crmsync_mailbox_channels" in names
    assert "# TYPE crmsync_messages_tracked_total counter" in right.text
    assert "# TYPE crmsync_sync_pass_duration_seconds histogram" in right.text


def test_an_allowed_network_opens_them_without_a_token(
    metrics_store: Store, metrics_org: Org, tmp_path: Path
) -> None:
    allow = ["10.0.0.0/8", "::1/128"]
    with client(metrics_store, tmp_path, "10.20.30.40", metrics_allow=allow) as http:
        assert http.get("/metrics").status_code == 200
    with client(metrics_store, tmp_path, "192.168.1.9", metrics_allow=allow) as http:
        assert http.get("/metrics").status_code == 404


def test_metrics_are_not_in_the_api_document(
    metrics_store: Store, metrics_org: Org, tmp_path: Path
) -> None:
    with client(metrics_store, tmp_path) as http:
        document = http.get("/api/v1/openapi.json").json()
    assert "/metrics" not in document["paths"]
    assert not any(path.startswith("/admin/dashboard") for path in document["paths"])


def test_a_profile_named_like_an_address_is_labelled_by_its_id(
    metrics_store: Store, metrics_org: Org, tmp_path: Path
) -> None:
    with metrics_store.transaction() as session:
        profile = EmailServerProfile(
            organisation_id=metrics_org.organisation_id,
            owner_id=metrics_org.admin_id,
            owning_business_unit_id=metrics_org.root_unit_id,
            name="ann.buyer@example.com",
            server_type=ServerType.IMAP_SMTP,
        )
        session.add(profile)
        session.flush()
        user = session.get(User, metrics_org.add_user(session, "ann.buyer"))
        create_mailbox_for(session, user=user).profile_id = profile.id
        profile_id = str(profile.id)

    with client(metrics_store, tmp_path, metrics_token=TOKEN) as http:
        text = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text

    gauge = [labels for name, labels, _ in samples(text) if name == "crmsync_mailbox_channels"]
    assert {"profile": profile_id, "protocol": "imap", "channel": "incoming"}.items() <= gauge[
        [labels["channel"] for labels in gauge].index("incoming")
    ].items()
    assert "@" not in text
    assert "ann.buyer" not in text


def test_profile_labels_are_names_only_when_plainly_names() -> None:
    profile_id = uuid.uuid4()
    assert profile_label("Dovecot (office)", profile_id) == "Dovecot (office)"
    assert profile_label("ann@example.com", profile_id) == str(profile_id)
    assert profile_label("x" * 65, profile_id) == str(profile_id)
    assert profile_label('bad"quote', profile_id) == str(profile_id)
    assert profile_label("Dovecot", None) == "none"


def test_counts_go_into_the_apps_own_registry() -> None:
    first, second = SyncMetrics(), SyncMetrics()
    first.incoming_pass(
        protocol="imap", profile="Dovecot", seconds=0.4, ok=True, fetched=3, tracked=2, failed=1
    )
    first.outgoing_pass(
        protocol="smtp", profile="Dovecot", seconds=1.2, ok=True, outcomes={"sent": 2, "failed": 0}
    )
    counted = {
        (name, tuple(sorted(labels.items()))): value
        for name, labels, value in samples(first.exposition().decode())
    }
    assert (
        counted[("crmsync_messages_fetched_total", (("profile", "Dovecot"), ("protocol", "imap")))]
        == 3
    )
    assert (
        counted[
            (
                "crmsync_emails_sent_total",
                (("outcome", "sent"), ("profile", "Dovecot"), ("protocol", "smtp")),
            )
        ]
        == 2
    )
    assert "crmsync_messages_fetched_total{" not in second.exposition().decode()
