"""Prometheus metrics of the sync engine, in a registry of the application's own.

``SyncMetrics`` holds one ``CollectorRegistry`` (not prometheus-client's global one, so
tests and several applications in one process never share counts). The engines running
in this process count into it where a pass records its outcome (sync/incoming.py,
sync/outgoing.py); the gauge of mailbox channel states is computed when scraped, from
the database, by ``ChannelStateCollector``. ``crmsync serve`` runs the engine embedded,
so /metrics (web/pages/admin_dashboard.py) shows what this process did since it started;
the dashboard's history across processes lives in the database (crm/stats.py).

    crmsync_messages_fetched_total{protocol, profile}
    crmsync_messages_tracked_total{protocol, profile}
    crmsync_messages_failed_total{protocol, profile}
    crmsync_sync_pass_duration_seconds{protocol, channel, profile, outcome}   histogram
    crmsync_push_latency_seconds{protocol, profile}                          histogram
    crmsync_emails_sent_total{protocol, profile, outcome}   sent|failed|retry|uncertain|bounced
    crmsync_mailbox_channels{protocol, channel, profile, status, enabled}    gauge

Labels name protocols, channels, profiles and outcomes — never a person: a profile is
labelled by its name only when that cannot be an address (``profile_label``), else by
its id. Must never take a mailbox, a username or an address as a label value.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crmsync.crm.stats import ChannelCount, channel_states
from crmsync.crm.store import Store

log = logging.getLogger(__name__)

# A profile name is a label only when it is plainly a name: no '@', nothing odd, short.
_PLAIN_NAME = re.compile(r"^[\w .()/+-]{1,64}$")
NO_PROFILE = "none"

PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
PUSH_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


def profile_label(name: str | None, profile_id: uuid.UUID | None) -> str:
    """``'Dovecot'`` → ``'Dovecot'``; ``'ann@example.com'`` → the profile's id; no
    profile → ``'none'``."""
    if profile_id is None:
        return NO_PROFILE
    if name and _PLAIN_NAME.match(name):
        return name
    return str(profile_id)


class ChannelStateCollector(Collector):
    """``crmsync_mailbox_channels``, read from the database at each scrape."""

    def __init__(self, read: Callable[[], Iterable[ChannelCount]]) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        # Nothing read at registration: the database may not be there yet.
        return []

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "crmsync_mailbox_channels",
            "Mailbox channels by state.",
            labels=["protocol", "channel", "profile", "status", "enabled"],
        )
        try:
            counts = list(self.read())
        except Exception:  # a scrape must not fail because the database is busy
            log.exception("metrics: could not count mailbox channel states")
            counts = []
        totals: dict[tuple[str, str, str, str, str], float] = {}
        for count in counts:
            key = (
                count.protocol,
                count.channel.value,
                profile_label(count.profile_name, count.profile_id),
                count.status.value,
                "true" if count.enabled else "false",
            )
            totals[key] = totals.get(key, 0) + count.count
        for labels, value in sorted(totals.items()):
            gauge.add_metric(list(labels), value)
        yield gauge


class SyncMetrics:
    """The application's counters and histograms, and their exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        by_source = ["protocol", "profile"]
        self.fetched = Counter(
            "crmsync_messages_fetched",
            "Messages fetched from mail servers.",
            by_source,
            registry=self.registry,
        )
        self.tracked = Counter(
            "crmsync_messages_tracked",
            "Fetched messages tracked in the CRM.",
            by_source,
            registry=self.registry,
        )
        self.failed = Counter(
            "crmsync_messages_failed",
            "Fetched messages that could not be processed (item failures).",
            by_source,
            registry=self.registry,
        )
        self.pass_duration = Histogram(
            "crmsync_sync_pass_duration_seconds",
            "How long one sync pass of one mailbox channel took.",
            ["protocol", "channel", "profile", "outcome"],
            buckets=PASS_BUCKETS,
            registry=self.registry,
        )
        self.push_latency = Histogram(
            "crmsync_push_latency_seconds",
            "From a server's IDLE notice to the commit of the pass it triggered.",
            by_source,
            buckets=PUSH_BUCKETS,
            registry=self.registry,
        )
        self.emails = Counter(
            "crmsync_emails_sent",
            "CRM emails handed to the outgoing server, by outcome.",
            ["protocol", "profile", "outcome"],
            registry=self.registry,
        )

    @classmethod
    def for_store(cls, store: Store) -> SyncMetrics:
        """The metrics of an application on ``store``, its channel states read from it."""
        metrics = cls()

        def read() -> list[ChannelCount]:
            with store.transaction() as session:
                return channel_states(session)

        metrics.watch_channels(read)
        return metrics

    def watch_channels(self, read: Callable[[], Iterable[ChannelCount]]) -> None:
        """Add the channel-state gauge, computed by ``read`` at each scrape."""
        self.registry.register(ChannelStateCollector(read))

    def incoming_pass(
        self,
        *,
        protocol: str,
        profile: str,
        seconds: float,
        ok: bool,
        fetched: int,
        tracked: int,
        failed: int,
        bounced: int = 0,
        push_latency: float | None = None,
    ) -> None:
        self.fetched.labels(protocol, profile).inc(fetched)
        self.tracked.labels(protocol, profile).inc(tracked)
        self.failed.labels(protocol, profile).inc(failed)
        if bounced:
            self.emails.labels("smtp", profile, "bounced").inc(bounced)
        outcome = "ok" if ok else "error"
        self.pass_duration.labels(protocol, "incoming", profile, outcome).observe(seconds)
        if push_latency is not None:
            self.push_latency.labels(protocol, profile).observe(push_latency)

    def outgoing_pass(
        self, *, protocol: str, profile: str, seconds: float, ok: bool, outcomes: dict[str, int]
    ) -> None:
        """``outcomes``: ``{"sent": 3, "failed": 1, "retry": 0, "uncertain": 0}``."""
        for outcome, count in outcomes.items():
            self.emails.labels(protocol, profile, outcome).inc(count)
        outcome = "ok" if ok else "error"
        self.pass_duration.labels(protocol, "outgoing", profile, outcome).observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return bytes(generate_latest(self.registry))
