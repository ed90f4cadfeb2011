"""The incoming engine as a state machine under faults: every message once, cursors honest.

A hypothesis ``RuleBasedStateMachine`` drives the real ``sync_incoming`` (through the
channel runner) against the in-memory mail server (connectors/memory.py) on a real,
migrated SQLite store. One organisation has three queue mailboxes that track all email:
``a`` and ``b`` on IMAP, ``c`` on POP3 (deleting after processing in half the runs);
half the runs have a server with the least RFC 3501 allows (quirks.MINIMAL: no UIDNEXT
in SELECT, no CONDSTORE). Batches are of two messages, so a pass commits several.

Rules: mail arrives (plain, without a Message-ID, or unparseable; one message to one,
two or three mailboxes), messages are expunged (which renumbers POP3's message numbers),
flags change, a folder gets a new UIDVALIDITY (for POP3: every UIDL changes), and passes
run — cleanly, with the connection dropped at the n-th server call, or with the worker
killed (``Killed``, a BaseException nothing in the engine catches) at the n-th server
call, before a batch is stored, inside the batch's ``also`` (its cursor rows written,
not committed), right after a batch committed, or after POP3's QUIT. The next pass runs
as another worker, the dead one's lease counting as expired, as after a restart.

Invariants after every step:
- every message seen on the server by a successful pass of a mailbox (and every message
  tracked at all) is one email organisation-wide: copies in several mailboxes, redone
  batches and re-mapped UIDs all link to it; an unparseable one is a ledger row with an
  item failure instead;
- no cursor is ahead of what is stored: every message on the server below an IMAP
  folder's cursor, and every UIDL in the POP3 ledger, has its ledger row;
- a pass after a successful pass, with no change on the server, writes nothing.
After draining (no faults): everything on the server is tracked, and a POP3 mailbox that
deletes after processing is empty.

Pinned as a plain test below: what the machine found (a POP3 QUIT lost with the
connection left processed messages on the server for good).
"""

from __future__ import annotations

import tempfile
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.connectors.memory import CAPABILITIES, MemoryMailServer
from crmsync.connectors.quirks import GENERIC, MINIMAL
from crmsync.core.errors import ErrorCode
from crmsync.core.types import Channel
from crmsync.crm.alerts import mark_channel_ok
from crmsync.crm.db import utcnow
from crmsync.crm.models import FolderCursor, ItemFailure, Mailbox, MailboxMessage
from crmsync.crm.models.sync_state import Pop3Seen
from crmsync.sync.incoming import imap as incoming_imap
from crmsync.sync.incoming import ingest as incoming_ingest
from crmsync.sync.incoming import parser_pool
from crmsync.sync.incoming import pop3 as incoming_pop3
from crmsync.sync.incoming.imap import reset_uidvalidity_resyncs
from crmsync.sync.incoming.options import IncomingReport
from crmsync.sync.incoming.parser_pool import Fetched, Outcome
from tests.conftest import Org, make_org, sqlite_store
from tests.unit.sync.incoming.mail_world import MailWorld, sha256

NAMES = ("a", "b", "c")
POP3 = ("c",)
FLAVOURS = ("plain", "plain", "plain", "no_message_id", "malformed")
FLAGS = ("\\Seen", "\\Flagged", "\\Answered")
# Where a worker can die, besides at a server call ("call").
POINTS = ("committed", "after_quit", "in_also", "before_store")
_ORG: list[Org] = []


def shared_org() -> Org:
    """One organisation on one migrated SQLite store for every run; each run is a world of
    its own in it (a business unit, its mailboxes and its messages: mail_world.py)."""
    if not _ORG:
        store = sqlite_store(Path(tempfile.mkdtemp(prefix="crmsync-incoming-machine-")))
        _ORG.append(make_org(store, "Machine"))
    return _ORG[0]


@dataclass(frozen=True)
class Mail:
    """``count`` new messages, each delivered to every mailbox of ``to``."""

    to: tuple[str, ...]
    flavour: str  # plain, no_message_id or malformed
    count: int


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # expunge, flags or uidvalidity
    index: int  # which message (modulo how many there are)
    flags: frozenset[str]


@dataclass(frozen=True)
class Fault:
    at: str  # "drop" (the connection), "call" (the worker dies at a server call), a POINT
    n: int  # at the n-th such call or point of the pass
    mailbox: int  # which of the mailboxes with new mail (modulo how many there are)


MAIL = st.builds(
    Mail,
    to=st.sets(st.sampled_from(NAMES), min_size=1).map(lambda names: tuple(sorted(names))),
    flavour=st.sampled_from(FLAVOURS),
    count=st.integers(1, 4),
)
CHANGES = st.builds(
    Change,
    name=st.sampled_from(NAMES),
    kind=st.sampled_from(("expunge", "flags", "uidvalidity")),
    index=st.integers(0, 50),
    flags=st.frozensets(st.sampled_from(FLAGS)),
)
FAULTS = st.one_of(
    st.builds(Fault, at=st.sampled_from(POINTS), n=st.integers(1, 2), mailbox=st.integers(0, 2)),
    st.builds(
        Fault, at=st.sampled_from(("call", "drop")), n=st.integers(1, 10), mailbox=st.integers(0, 2)
    ),
)


class Killed(BaseException):
    """The worker process dies (not an Exception: nothing in the engine may catch it)."""


class KillSwitch:
    """Where the next pass dies: the n-th time it reaches ``point``."""

    def __init__(self) -> None:
        self.point: str | None = None
        self.left = 0

    def arm(self, point: str, n: int) -> None:
        self.point, self.left = point, n

    def disarm(self) -> None:
        self.point = None

    def reached(self, point: str) -> None:
        if self.point != point:
            return
        self.left -= 1
        if self.left == 0:
            self.point = None
            raise Killed(point)


SWITCH = KillSwitch()


@pytest.fixture(autouse=True)
def kill_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Parse in this process (the one-core path of parser_pool: deterministic and quick),
    and give the kill switch its points in the pass."""
    monkeypatch.setattr(parser_pool._pool, "get", lambda: None)
    real_store_batch = incoming_ingest.store_batch

    def store_batch(*args: Any, **kwargs: Any) -> Any:
        SWITCH.reached("before_store")
        return real_store_batch(*args, **kwargs)

    monkeypatch.setattr(incoming_ingest, "store_batch", store_batch)

    def ingest_with(real: Callable[..., None]) -> Callable[..., None]:
        def ingest(
            *args: Any, also: Callable[[Session, list[Fetched], list[Outcome]], None]
        ) -> None:
            def also_then_die(
                session: Session, batch: list[Fetched], outcomes: list[Outcome]
            ) -> None:
                also(session, batch, outcomes)
                SWITCH.reached("in_also")

            real(*args, also=also_then_die)

        return ingest

    monkeypatch.setattr(incoming_imap, "ingest", ingest_with(incoming_imap.ingest))
    monkeypatch.setattr(incoming_pop3, "ingest", ingest_with(incoming_pop3.ingest))
    real_add = IncomingReport.add

    def add(report: IncomingReport, other: Any) -> None:
        real_add(report, other)  # the batch has committed
        SWITCH.reached("committed")

    monkeypatch.setattr(IncomingReport, "add", add)
    real_mark = incoming_pop3._mark

    def mark(*args: Any, **kwargs: Any) -> None:
        SWITCH.reached("after_quit")
        real_mark(*args, **kwargs)

    monkeypatch.setattr(incoming_pop3, "_mark", mark)
    yield
    SWITCH.disarm()


class IncomingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.server = MemoryMailServer()
        self.world = MailWorld(shared_org(), self.server, NAMES, pop3=POP3)
        self.raws: list[bytes] = []  # message k is raws[k]
        self.flavours: list[str] = []
        self.k_of_sha: dict[str, int] = {}
        self.seen: dict[str, set[int]] = {name: set() for name in NAMES}
        self.unchecked: set[str] = set()  # passed, and unchanged since: rerun must write nothing
        self.fresh: set[str] = set()  # new mail since its last successful pass

    @initialize(minimal=st.booleans(), delete=st.booleans())
    def server_kind(self, minimal: bool, delete: bool) -> None:
        self.server.quirks = MINIMAL if minimal else GENERIC
        self.server.capabilities = CAPABILITIES - (
            MINIMAL.ignore_capabilities if minimal else set()
        )
        with self.world.store.transaction() as session:
            for name in POP3:
                mailbox = session.get(Mailbox, self.world.boxes[name].mailbox_id)
                assert mailbox is not None
                mailbox.delete_after_processing = delete

    # -- the server changes -------------------------------------------------------------
    # Each rule takes one value: hypothesis orders rules by their number of arguments and
    # favours the first, so with one each, mail, changes, passes and faulty passes all
    # come often.
    def _changed(self, name: str) -> None:
        self.unchecked.discard(name)

    @rule(mail=MAIL)
    def mail_arrives(self, mail: Mail) -> None:
        for _ in range(mail.count):
            k = len(self.raws)
            if mail.flavour == "malformed":
                raw = self.world.malformed(k)
            else:
                raw = self.world.message(k, list(mail.to), message_id=mail.flavour == "plain")
            self.raws.append(raw)
            self.flavours.append(mail.flavour)
            self.k_of_sha[sha256(raw)] = k
            for name in mail.to:
                self.world.inbox(name).deliver(raw)
                self._changed(name)
                self.fresh.add(name)

    @rule(change=CHANGES)
    def server_changes(self, change: Change) -> None:
        """Another client expunges a message (on POP3, the messages after it are numbered
        anew in the next session) or sets its flags; or the folder's UIDVALIDITY changes
        (on POP3: every UIDL)."""
        inbox = self.world.inbox(change.name)
        uids = inbox.uids()
        if change.kind == "uidvalidity":
            inbox.renumber()
        elif not uids:
            return
        elif change.kind == "expunge":
            inbox.expunge([uids[change.index % len(uids)]])
        else:
            inbox.set_flags(uids[change.index % len(uids)], change.flags)
        self._changed(change.name)

    # -- passes -------------------------------------------------------------------------
    def _admin_keeps_it_enabled(self, name: str) -> None:
        """Failures in a row, and too many UIDVALIDITY changes, disable the channel: model
        the administrator's Test & Enable that follows."""
        with self.world.store.transaction() as session:
            mailbox = session.get(Mailbox, self.world.boxes[name].mailbox_id)
            assert mailbox is not None
            channel = mailbox.channel(Channel.INCOMING)
            if not channel.enabled:
                reset_uidvalidity_resyncs(session, mailbox.id)
                mark_channel_ok(channel, now=utcnow(), enable=True)

    def _on_server(self, name: str) -> set[int]:
        inbox = self.world.inbox(name)
        return {self.k_of_sha[sha256(inbox.raw(uid))] for uid in inbox.uids()}

    def _pass(self, name: str, fault: Fault | None = None) -> bool:
        """One pass; True when it succeeded (then what was on the server counts as seen)."""
        self._admin_keeps_it_enabled(name)
        there = self._on_server(name)
        if fault is not None and fault.at == "drop":
            self.server.fail_on_call(fault.n)
        elif fault is not None and fault.at == "call":
            self.server.fail_on_call(fault.n, Killed("call"))
        elif fault is not None:
            SWITCH.arm(fault.at, fault.n)
        try:
            report = self.world.sync(name)
        except Killed as killed:
            event(f"worker killed: {killed}")
            return False
        finally:
            SWITCH.disarm()
            self.server.clear_faults()
        assert report.ran, report.why_not
        if report.error is not None:
            allowed = {ErrorCode.UIDVALIDITY_RESYNC_LIMIT}
            if fault is not None and fault.at == "drop":
                allowed.add(ErrorCode.CONNECTION_LOST)
            assert report.error.code in allowed, report.error
            event(f"pass failed: {report.error.code.value}")
            return False
        self.seen[name] |= there
        self.fresh.discard(name)
        self.unchecked.add(name)
        return True

    @rule(name=st.sampled_from(NAMES))
    def run_pass(self, name: str) -> None:
        self._pass(name)

    @precondition(lambda self: self.fresh)
    @rule(fault=FAULTS)
    def faulty_pass(self, fault: Fault) -> None:
        """A pass of a mailbox with new mail (where a fault can do harm): the connection
        drops at the n-th server call, or the worker dies there or at the n-th time it
        reaches one of ``POINTS``."""
        names = sorted(self.fresh)
        self._pass(names[fault.mailbox % len(names)], fault)

    # -- invariants ---------------------------------------------------------------------
    def _rows(self) -> tuple[dict[uuid.UUID, str | None], list[MailboxMessage]]:
        with self.world.store.transaction() as session:
            emails, rows = self.world.emails(session), self.world.ledger(session)
            session.expunge_all()
        return emails, rows

    @invariant()
    def one_email_per_message(self) -> None:
        emails, rows = self._rows()
        k_of_message_id = {self.world.message_id(k): k for k in range(len(self.raws))}
        emails_of: dict[int, set[uuid.UUID]] = defaultdict(set)
        for email_id, message_id in emails.items():
            if message_id is not None:
                emails_of[k_of_message_id[message_id]].add(email_id)
        for row in rows:
            assert row.raw_sha256 is not None
            k = self.k_of_sha[row.raw_sha256]
            if row.tracked:
                assert row.email_id in emails, f"message {k}: a ledger row links no email"
                emails_of[k].add(row.email_id)
            else:
                assert self.flavours[k] == "malformed", f"message {k} not tracked: {row.reason}"
        for k, ids in emails_of.items():
            assert len(ids) == 1, f"message {k} ({self.flavours[k]}) is {len(ids)} emails"
            assert self.flavours[k] != "malformed"
        assert set().union(*emails_of.values()) == set(emails), "an email of no message"
        with self.world.store.transaction() as session:
            failed = set(
                session.execute(
                    select(ItemFailure.mailbox_id, ItemFailure.raw_sha256).where(
                        ItemFailure.mailbox_id.in_(self.world.mailbox_ids())
                    )
                )
            )
        for name, ks in self.seen.items():
            mailbox_id = self.world.boxes[name].mailbox_id
            held = {self.k_of_sha[r.raw_sha256 or ""] for r in rows if r.mailbox_id == mailbox_id}
            for k in ks:
                assert k in held, f"{name} saw message {k} ({self.flavours[k]}): no ledger row"
                if self.flavours[k] == "malformed":
                    assert (mailbox_id, sha256(self.raws[k])) in failed
                else:
                    assert emails_of[k], f"{name} saw message {k}: no email"

    @invariant()
    def no_cursor_ahead_of_the_ledger(self) -> None:
        _, rows = self._rows()
        with self.world.store.transaction() as session:
            cursors = {
                c.mailbox_id: (c.uidvalidity, c.next_uid)
                for c in session.scalars(
                    select(FolderCursor).where(
                        FolderCursor.mailbox_id.in_(self.world.mailbox_ids())
                    )
                )
            }
            listed = set(
                session.execute(
                    select(Pop3Seen.mailbox_id, Pop3Seen.uidl).where(
                        Pop3Seen.mailbox_id.in_(self.world.mailbox_ids())
                    )
                )
            )
        for name, box in self.world.boxes.items():
            inbox = self.world.inbox(name)
            mine = [r for r in rows if r.mailbox_id == box.mailbox_id]
            if box.pop3:
                stored = {r.raw_sha256 for r in mine}
                for uid in inbox.uids():
                    if (box.mailbox_id, inbox.uidl(uid)) in listed:
                        assert sha256(inbox.raw(uid)) in stored, (
                            f"{name}: UIDL {inbox.uidl(uid)} in the POP3 ledger, not stored"
                        )
                continue
            cursor = cursors.get(box.mailbox_id)
            if cursor is None or cursor[0] != inbox.uidvalidity:
                continue  # the cursor covers another generation of UIDs
            stored_uids = {r.uid for r in mine if r.uidvalidity == inbox.uidvalidity}
            for uid in inbox.uids():
                if uid < cursor[1]:
                    assert uid in stored_uids, (
                        f"{name}: cursor at {cursor[1]}, UID {uid} below it not stored"
                    )

    @invariant()
    def a_rerun_without_change_writes_nothing(self) -> None:
        for name in sorted(self.unchecked):
            before = self.world.what_is_stored()
            assert self._pass(name)
            after = self.world.what_is_stored()
            assert after == before, f"{name}: a rerun wrote {before.difference(after)}"
        self.unchecked.clear()

    def teardown(self) -> None:
        SWITCH.disarm()
        self.server.clear_faults()
        for name in NAMES:
            assert self._pass(name)
        self.one_email_per_message()
        self.no_cursor_ahead_of_the_ledger()
        for name in NAMES:
            missing = self._on_server(name) - self.seen[name]
            assert not missing, f"{name}: {missing} never seen"
        with self.world.store.transaction() as session:
            for name in POP3:
                mailbox = session.get(Mailbox, self.world.boxes[name].mailbox_id)
                assert mailbox is not None
                if mailbox.delete_after_processing:
                    left = self.world.inbox(name).uids()
                    assert not left, f"{name}: processed messages left on the server: {left}"


IncomingMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# A failure is shrunk for up to five minutes (hypothesis's own limit): let that end it,
# not pytest-timeout, whose interruption would look like a flaky failure.
TestIncomingMachine = pytest.mark.timeout(900)(IncomingMachine.TestCase)


# -- pinned ---------------------------------------------------------------------------------


def test_a_lost_quit_does_not_keep_processed_messages_on_the_server() -> None:
    # What the machine found: DELE takes effect only at QUIT, and a QUIT lost with the
    # connection is silent (Pop3Connection.quit never raises). The pass then marked the
    # message deleted though the server still had it, and no later pass deleted it.
    machine = IncomingMachine()
    machine.server_kind(minimal=False, delete=True)
    machine.mail_arrives(Mail(to=("c",), flavour="plain", count=1))
    calls = machine.server.calls.total()
    assert machine._pass("c")
    quit_at = machine.server.calls.total() - calls  # open, UIDL, LIST, RETR, DELE, QUIT
    machine.mail_arrives(Mail(to=("c",), flavour="plain", count=1))
    machine._pass("c", Fault("drop", quit_at, 0))
    assert machine.world.inbox("c").uids() == [2]  # the DELE was not applied

    assert machine._pass("c")
    assert machine.world.inbox("c").uids() == []
    machine.one_email_per_message()
    machine.no_cursor_ahead_of_the_ledger()
