"""Adaptive polling: busy mailboxes often, quiet ones less, retries when they are due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from crmsync.sync.schedule import MAX_INTERVAL, ChannelState, next_due, poll_interval

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@given(quiet=st.integers(min_value=0, max_value=10_000), seconds=st.integers(5, 3600))
def test_the_interval_grows_with_quiet_polls_and_is_bounded(quiet: int, seconds: int) -> None:
    minimum = timedelta(seconds=seconds)
    interval = poll_interval(minimum, quiet)
    assert min(minimum, MAX_INTERVAL) <= interval <= max(minimum, MAX_INTERVAL)
    assert poll_interval(minimum, quiet + 1) >= interval


def test_never_run_is_due_now_and_a_retry_time_wins() -> None:
    assert next_due(ChannelState(None, None, 0, MINUTE)) is None
    assert next_due(ChannelState(NOW, None, 0, MINUTE)) == NOW + MINUTE
    assert next_due(ChannelState(NOW, None, 3, MINUTE)) == NOW + 8 * MINUTE
    retry = NOW + timedelta(seconds=7)
    assert next_due(ChannelState(NOW, retry, 5, MINUTE)) == retry
