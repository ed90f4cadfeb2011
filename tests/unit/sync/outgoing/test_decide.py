"""The outgoing engine's decisions: after an SMTP transaction, after a Sent-folder look-up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from crmsync.connectors.base import SendResult
from crmsync.core.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.sync.outgoing.decide import Lookup, Verdict, after_lookup, after_send

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base_seconds=60, cap_seconds=600)


def test_accepted_is_sent_and_names_the_refused_recipients() -> None:
    decision = after_send(
        SendResult(["a@x.example"], {"b@x.example": (550, "5.1.1 unknown")}), 1, POLICY, NOW
    )
    assert decision.verdict is Verdict.SENT
    assert decision.refused == "b@x.example (550 5.1.1 unknown)"


@pytest.mark.parametrize(
    "code",
    [
        ErrorCode.RECIPIENT_REJECTED,
        ErrorCode.MESSAGE_REJECTED,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.QUOTA,
        ErrorCode.AUTH_FAILED,
    ],
)
def test_permanent_errors_fail_at_once_with_the_servers_answer(code: ErrorCode) -> None:
    error = SyncError(code, "RCPT refused: 550 5.1.1 no such user (mx:25)")
    decision = after_send(error, 1, POLICY, NOW)
    assert (decision.verdict, decision.code) == (Verdict.FAILED, code.value)
    assert decision.detail == error.detail


def test_transient_errors_retry_with_backoff_until_the_limit() -> None:
    error = SyncError(ErrorCode.SERVER_UNAVAILABLE, "RCPT refused: 451 4.7.1 later")
    rng = random.Random(7)
    first = after_send(error, 1, POLICY, NOW, rng)
    assert first.verdict is Verdict.RETRY
    assert first.retry_at is not None
    assert NOW <= first.retry_at <= NOW + timedelta(seconds=60)
    assert not first.maybe_sent
    second = after_send(error, 2, POLICY, NOW, rng)
    assert second.retry_at is not None
    assert second.retry_at <= NOW + timedelta(seconds=120)
    last = after_send(error, 3, POLICY, NOW, rng)
    assert last.verdict is Verdict.FAILED
    assert last.detail.startswith("gave up after 3 attempts: ")


@pytest.mark.parametrize("code", [ErrorCode.TIMEOUT, ErrorCode.CONNECTION_LOST])
def test_a_broken_connection_may_have_delivered_so_the_retry_looks_first(
    code: ErrorCode,
) -> None:
    decision = after_send(SyncError(code, "lost"), 1, POLICY, NOW)
    assert (decision.verdict, decision.maybe_sent) == (Verdict.RETRY, True)


@pytest.mark.parametrize(
    ("found", "orphan", "resend", "verdict"),
    [
        (Lookup.FOUND, True, False, Verdict.SENT),
        (Lookup.FOUND, False, False, Verdict.SENT),
        (Lookup.NOT_FOUND, True, False, Verdict.FAILED),  # never twice
        (Lookup.NOT_FOUND, True, True, Verdict.SEND),  # the operator chose at-least-once
        (Lookup.NOT_FOUND, False, False, Verdict.SEND),  # a retry: now it may go
        (Lookup.UNAVAILABLE, True, False, Verdict.KEEP),
        (Lookup.UNAVAILABLE, False, True, Verdict.KEEP),
    ],
)
def test_after_a_look_up(found: Lookup, orphan: bool, resend: bool, verdict: Verdict) -> None:
    decision = after_lookup(found, orphan=orphan, resend_when_uncertain=resend)
    assert decision.verdict is verdict
    if verdict is Verdict.FAILED:
        assert decision.code == "DELIVERY_UNCERTAIN"
