"""The channel runner with an engine that only counts: what every engine gets for free.

A pass that cannot run records nothing; one that fails — before connecting or while
working, by a SyncError or a bug — is recorded with its code and the channel's health;
the lease is released whatever happened; the operator gets one line per pass.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crmsync.core.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.core.types import Approval, Channel, ChannelStatus
from crmsync.crm.models import Alert, Mailbox
from crmsync.crm.models.stats import SyncPass
from crmsync.crm.secrets import SecretBox
from crmsync.crm.stats import PassFigures
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics
from crmsync.sync import leases
from crmsync.sync.context import NotRunnable, Runnable
from crmsync.sync.runner import (
    ChannelEngine,
    ChannelOptions,
    Count,
    LeaseLost,
    PassReport,
    Recorded,
    run_pass,
)
from tests.conftest import Org
from tests.unit.sync.mailboxes import runnable_imap_mailbox


@dataclass
class CountingReport(PassReport):
    items: int = 0


@dataclass
class Script:
    """What the engine does when run, and what the runner asked of it."""

    outcome: int | BaseException = 3  # items processed, or what it raises
    refuse: SyncError | None = None  # check()'s answer
    calls: list[str] = field(default_factory=list)


class CountingEngine(ChannelEngine[CountingReport, ChannelOptions]):
    channel = Channel.INCOMING
    busy = "someone else has it"

    def __init__(self, options: ChannelOptions, script: Script) -> None:
        super().__init__(options)
        self.script = script

    def new_report(self, mailbox_id: uuid.UUID) -> CountingReport:
        return CountingReport(mailbox_id)

    def blocked(self, session: Session, blocked: NotRunnable, report: CountingReport) -> None:
        self.script.calls.append(f"blocked: {blocked.why}")

    def check(self, session: Session, ready: Runnable) -> SyncError | None:
        self.script.calls.append("check")
        return self.script.refuse

    def run(self, store: Store, ready: Runnable, report: CountingReport) -> None:
        self.script.calls.append("run")
        # The lease is held while the engine works.
        assert not leases.acquire(store, report.mailbox_id, self.channel, "intruder:1:1")
        if isinstance(self.script.outcome, BaseException):
            raise self.script.outcome
        report.items = self.script.outcome

    def figures(self, report: CountingReport, protocol: str) -> PassFigures:
        return PassFigures(
            protocol=protocol,
            started_at=report.started_at,
            tracked=report.items,
            error_code=report.error.code.value if report.error is not None else None,
        )

    def items(self, report: CountingReport) -> int:
        return report.items

    def tally(self, report: CountingReport) -> list[Count]:
        return [Count("items", "items", report.items), Count("extra", "extra", 0, always=False)]

    def count(self, metrics: SyncMetrics, report: CountingReport, recorded: Recorded) -> None:
        self.script.calls.append(f"count {recorded.protocol} {recorded.profile}")


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SecretBox.generate_key()])


def _run(
    org: Org, box: SecretBox, mailbox_id: uuid.UUID, script: Script, **options: object
) -> CountingReport:
    engine = CountingEngine(ChannelOptions(worker="me:1:1", **options), script)  # type: ignore[arg-type]
    return run_pass(org.store, box, mailbox_id, engine)


def _passes(org: Org, mailbox_id: uuid.UUID) -> list[SyncPass]:
    with org.store.transaction() as session:
        rows = session.scalars(select(SyncPass).where(SyncPass.mailbox_id == mailbox_id)).all()
        session.expunge_all()
        return list(rows)


def _channel(org: Org, mailbox_id: uuid.UUID) -> tuple[ChannelStatus, bool, str | None, bool]:
    """Status, enabled, last error code, and whether the lease is free."""
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        channel = mailbox.channel(Channel.INCOMING)
        return channel.status, channel.enabled, channel.last_error_code, channel.lease_owner is None


def _alert_codes(org: Org, mailbox_id: uuid.UUID) -> list[str]:
    """The mailbox's own alerts (its profile's "most mailboxes failing" aside)."""
    with org.store.transaction() as session:
        return list(session.scalars(select(Alert.code).where(Alert.mailbox_id == mailbox_id)))


def test_a_pass_runs_records_its_figures_and_releases_the_lease(
    org: Org, box: SecretBox, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    script = Script(outcome=3)
    with caplog.at_level(logging.INFO, logger="crmsync.sync"):
        report = _run(org, box, mailbox_id, script, metrics=SyncMetrics())
    assert (report.ran, report.error, report.why_not, report.items) == (True, None, "", 3)
    assert script.calls == ["check", "run", "count imap IMAP"]
    (recorded,) = _passes(org, mailbox_id)
    assert (recorded.protocol, recorded.tracked, recorded.error_code) == ("imap", 3, None)
    status, enabled, code, released = _channel(org, mailbox_id)
    assert (status, enabled, code, released) == (ChannelStatus.SUCCESS, True, None, True)
    # The operator's line: figures (a zero one only when it always shows), no detail.
    (line,) = [r for r in caplog.records if getattr(r, "event", "") == "incoming_pass"]
    assert line.getMessage().startswith("ann@acme.test IMAP: 3 items in ")
    assert (line.items, line.extra, line.error_code) == (3, 0, None)


def test_a_channel_held_by_another_worker_is_left_alone(org: Org, box: SecretBox) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    assert leases.acquire(org.store, mailbox_id, Channel.INCOMING, "other:1:1")
    script = Script()
    report = _run(org, box, mailbox_id, script)
    assert (report.ran, report.why_not) == (False, "someone else has it")
    assert script.calls == []
    assert _passes(org, mailbox_id) == []


def test_a_channel_that_may_not_run_records_nothing(org: Org, box: SecretBox) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        mailbox.approval = Approval.PENDING
    script = Script()
    report = _run(org, box, mailbox_id, script)
    assert (report.ran, report.why_not) == (False, "mailbox is pending, not approved")
    assert script.calls == ["blocked: mailbox is pending, not approved"]
    assert _passes(org, mailbox_id) == []
    assert _channel(org, mailbox_id)[3] is True  # released


def test_a_mailbox_without_credentials_fails_before_connecting(org: Org, box: SecretBox) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, password=False, address="ann@acme.test")
    script = Script()
    report = _run(org, box, mailbox_id, script)
    assert report.ran
    assert report.error is not None
    assert report.error.code is ErrorCode.CREDENTIALS_MISSING
    assert script.calls == []  # neither checked nor run: there is nothing to run with
    (recorded,) = _passes(org, mailbox_id)
    assert recorded.error_code == "CREDENTIALS_MISSING"
    status, enabled, code, _ = _channel(org, mailbox_id)
    assert (status, enabled, code) == (ChannelStatus.FAILURE, False, "CREDENTIALS_MISSING")
    assert _alert_codes(org, mailbox_id) == ["CREDENTIALS_MISSING"]


def test_an_engines_own_check_fails_the_pass_without_running_it(org: Org, box: SecretBox) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    script = Script(refuse=SyncError(ErrorCode.CONFIGURATION, "no SMTP server"))
    report = _run(org, box, mailbox_id, script)
    assert report.error is not None
    assert report.error.code is ErrorCode.CONFIGURATION
    assert script.calls == ["check"]
    assert _passes(org, mailbox_id)[0].error_code == "CONFIGURATION"


def test_a_transient_error_is_retried_and_a_permanent_one_disables_the_channel(
    org: Org, box: SecretBox
) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    _run(org, box, mailbox_id, Script(outcome=SyncError(ErrorCode.TIMEOUT)))
    status, enabled, code, released = _channel(org, mailbox_id)
    assert (enabled, code, released) == (True, "TIMEOUT", True)
    _run(org, box, mailbox_id, Script(outcome=SyncError(ErrorCode.AUTH_FAILED)))
    status, enabled, code, released = _channel(org, mailbox_id)
    assert (status, enabled, code, released) == (ChannelStatus.FAILURE, False, "AUTH_FAILED", True)
    assert sorted(_alert_codes(org, mailbox_id)) == ["AUTH_FAILED", "TIMEOUT"]


def test_a_bug_in_an_engine_is_an_internal_failure_not_a_crash(
    org: Org, box: SecretBox, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    report = _run(org, box, mailbox_id, Script(outcome=KeyError("oops")))
    assert report.error is not None
    assert report.error.code is ErrorCode.INTERNAL
    assert "KeyError" in report.error.detail
    assert _passes(org, mailbox_id)[0].error_code == "INTERNAL"
    assert _channel(org, mailbox_id)[3] is True
    assert any(record.exc_info for record in caplog.records)  # the traceback is logged


def test_a_lost_lease_stops_the_pass_quietly(org: Org, box: SecretBox) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    report = _run(org, box, mailbox_id, Script(outcome=LeaseLost()))
    assert (report.error, report.why_not) == (None, "the lease was taken over by another worker")


def test_the_lease_is_released_even_when_the_worker_is_interrupted(
    org: Org, box: SecretBox
) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    with pytest.raises(KeyboardInterrupt):
        _run(org, box, mailbox_id, Script(outcome=KeyboardInterrupt()))
    assert _channel(org, mailbox_id)[3] is True
    with org.store.transaction() as session:
        assert session.scalar(select(func.count(SyncPass.id))) == 0


def test_retry_policy_comes_from_the_options(org: Org, box: SecretBox) -> None:
    mailbox_id = runnable_imap_mailbox(org, box, address="ann@acme.test")
    once = RetryPolicy(max_attempts=1)
    _run(org, box, mailbox_id, Script(outcome=SyncError(ErrorCode.TIMEOUT)), retry_policy=once)
    _, enabled, code, _ = _channel(org, mailbox_id)
    assert (enabled, code) == (False, "TIMEOUT")  # given up after one attempt
