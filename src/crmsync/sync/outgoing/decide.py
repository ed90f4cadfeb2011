"""The outgoing engine's decisions, as pure functions of what happened.

    after_send     an SMTP transaction's outcome → sent | retry (when) | failed (why)
    after_lookup   an email whose fate is unknown, looked up in the Sent folder →
                   sent | send (again) | failed (DELIVERY_UNCERTAIN) | keep (ask later)

Rules (RFC 5321 §4.2.1: 4xx = try again later, 5xx = do not repeat as is):
- accepted by the server (even when some recipients were refused) → sent;
- a permanent code (5xx and every non-transient catalogue code) → failed at once, the
  server's answer in the reason;
- a transient code (4xx, network) → retry after ``RetryPolicy.delay(attempts - 1)``
  (full jitter), until ``attempts`` reaches ``RetryPolicy.max_attempts``: then failed;
- a broken connection (TIMEOUT, CONNECTION_LOST) may have broken *after* the server took
  the message: the retry is marked ``maybe_sent``, and the Sent folder is searched for
  its Message-ID before it is sent again;
- an email left in ``sending`` by a worker that is gone (``orphan``) is never sent again
  without evidence that it was not accepted — and there is none to be had: found in the
  Sent folder → sent, not found → failed with DELIVERY_UNCERTAIN (unless the operator
  chose ``resend_when_uncertain``, trading "never twice" for "never lost").

Pure: no I/O, no clock (``now`` is passed in); the random jitter can be seeded.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from crmsync.connectors.base import SendResult
from crmsync.core.errors import ErrorCode, RetryPolicy, SyncError

AMBIGUOUS = frozenset({ErrorCode.TIMEOUT, ErrorCode.CONNECTION_LOST})
UNCERTAIN_DETAIL = (
    "crmsync stopped while handing this email to the mail server and found no copy in the "
    "Sent folder; so that it is never sent twice, it was not sent again"
)


class Verdict(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SEND = "send"  # look-up: not sent, send it (again) now
    KEEP = "keep"  # look-up: no answer; decide on a later pass


@dataclass(frozen=True, slots=True)
class Decision:
    """``Decision(Verdict.RETRY, 'SERVER_UNAVAILABLE', 'RCPT refused: 451 ...', when)``."""

    verdict: Verdict
    code: str | None = None
    detail: str = ""
    retry_at: datetime | None = None
    maybe_sent: bool = False
    refused: str = ""


def _refused(result: SendResult) -> str:
    return "; ".join(
        f"{address} ({reply} {text})" for address, (reply, text) in result.refused.items()
    )


def after_send(
    outcome: SendResult | SyncError,
    attempts: int,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """What to record after attempt number ``attempts`` (1-based) of an email."""
    if isinstance(outcome, SendResult):
        return Decision(Verdict.SENT, refused=_refused(outcome))
    code = outcome.code.value
    if not outcome.transient:
        return Decision(Verdict.FAILED, code, outcome.detail)
    if attempts >= policy.max_attempts:
        detail = f"gave up after {attempts} attempts: {outcome.detail}"
        return Decision(Verdict.FAILED, code, detail)
    delay = policy.delay(max(0, attempts - 1), rng)
    return Decision(
        Verdict.RETRY,
        code,
        outcome.detail,
        retry_at=now + timedelta(seconds=delay),
        maybe_sent=outcome.code in AMBIGUOUS,
    )


class Lookup(enum.StrEnum):
    """What a search of the Sent folder by Message-ID found."""

    FOUND = "found"
    NOT_FOUND = "not_found"  # also: the mailbox has no Sent folder to look in (POP3)
    UNAVAILABLE = "unavailable"  # the search failed this time


def after_lookup(found: Lookup, *, orphan: bool, resend_when_uncertain: bool = False) -> Decision:
    """An email that may have been accepted, looked up by Message-ID in the Sent folder.

    ``orphan``: still ``sending``, its worker gone; else a retry marked ``maybe_sent``.
    """
    if found is Lookup.FOUND:
        return Decision(Verdict.SENT)
    if found is Lookup.UNAVAILABLE:
        return Decision(Verdict.KEEP)
    if not orphan or resend_when_uncertain:
        return Decision(Verdict.SEND)
    return Decision(Verdict.FAILED, ErrorCode.DELIVERY_UNCERTAIN.value, UNCERTAIN_DETAIL)
