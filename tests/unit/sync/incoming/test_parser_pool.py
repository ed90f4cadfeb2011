"""Preparing fetched messages: raw bytes always kept, one bad message flagged alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmsync.core.errors import ErrorCode, SyncError
from crmsync.crm.blobfiles import STAGING, blob_path, digest
from crmsync.sync.incoming import parser_pool
from crmsync.sync.incoming.parser_pool import (
    Fetched,
    PendingBatch,
    Ready,
    Unparsed,
    discard_leftovers,
    prepare_fetched,
)
from crmsync.tracking.parse import ParseLimits
from tests.unit.sync.incoming.faulty_parser import misbehaving_prepare_one

BIG = 40  # messages: several pool tasks


def message(number: int, extra: str = "") -> bytes:
    return (
        f"From: Customer {number} <c{number}@example.test>\r\n"
        f"To: sales@crm.test\r\nSubject: Order {number}\r\n"
        f"Message-ID: <m{number}@example.test>\r\n{extra}"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/html\r\n\r\n"
        f"<p onclick='steal()'>Order {number}</p><script>alert(1)</script>\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="quote.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{'UERGLWRhdGE=' if number % 2 else 'b3RoZXI='}\r\n--b--\r\n"
    ).encode()


def fetched(raws: list[bytes | None]) -> list[Fetched]:
    return [
        Fetched("INBOX", 7, uid, None, raw, len(raw) if raw else 50_000_000)
        for uid, raw in enumerate(raws, start=1)
    ]


def test_each_outcome_keeps_what_the_store_needs(tmp_path: Path) -> None:
    good, broken = message(1), b"\x00\x01 no header at all"
    outcomes = prepare_fetched(fetched([good, broken, None]), ParseLimits(), tmp_path).outcomes()

    ready, unparsed, too_large = outcomes
    assert isinstance(ready, Ready)
    assert ready.parsed.message_id == "<m1@example.test>"
    assert ready.description == "<p>Order 1</p>"  # sanitized once, here
    assert ready.attachment_sha256 == (digest(b"PDF-data"),)
    # Attachment bytes stay on disk, staged, instead of travelling back between processes.
    assert ready.parsed.attachments[0].data == b""
    assert ready.parsed.attachments[0].size == len(b"PDF-data")
    (staged,) = ready.attachment_staged
    assert (tmp_path / STAGING / staged).read_bytes() == b"PDF-data"
    assert blob_path(tmp_path, ready.raw_sha256).read_bytes() == good
    assert isinstance(unparsed, Unparsed)
    assert blob_path(tmp_path, unparsed.raw_sha256).read_bytes() == broken
    assert isinstance(too_large, SyncError)
    assert too_large.code is ErrorCode.MESSAGE_TOO_LARGE
    assert not list(tmp_path.rglob(".tmp-*"))
    discard_leftovers(tmp_path, outcomes)
    assert not list((tmp_path / STAGING).iterdir())


def test_the_parser_pool_gives_what_in_process_preparing_gives(tmp_path: Path) -> None:
    raws: list[bytes | None] = [message(n) for n in range(BIG + 9)]
    raws[5] = None
    pooled = prepare_fetched(fetched(raws), ParseLimits(), tmp_path / "a").outcomes()
    alone = [
        prepare_fetched(fetched([raw]), ParseLimits(), tmp_path / "b").outcomes()[0] for raw in raws
    ]
    assert [_summary(o) for o in pooled] == [_summary(o) for o in alone]


def _summary(outcome: object) -> tuple[object, ...]:
    if isinstance(outcome, Ready):
        return (outcome.raw_sha256, outcome.parsed.message_id, outcome.description)
    return (type(outcome).__name__,)


@pytest.mark.parametrize(
    ("header", "why"), [("X-Test: hang\r\n", "took over"), ("X-Test: crash\r\n", "died")]
)
def test_a_message_that_hangs_or_kills_its_parser_is_flagged_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: str, why: str
) -> None:
    monkeypatch.setattr(parser_pool, "PARSE_SECONDS", 1.0)
    monkeypatch.setattr(parser_pool, "TASK_MESSAGES", 4)
    raws: list[bytes | None] = [message(n) for n in range(BIG)]
    raws[9] = message(9, header)
    items = fetched(raws)

    outcomes = PendingBatch(items, ParseLimits(), tmp_path, misbehaving_prepare_one).outcomes()

    bad = outcomes[9]
    assert isinstance(bad, Unparsed)
    assert why in bad.error.detail
    assert blob_path(tmp_path, bad.raw_sha256).read_bytes() == raws[9]
    assert all(isinstance(o, Ready) for i, o in enumerate(outcomes) if i != 9)
    # The pool was replaced: the next batch is prepared in parser processes again.
    more: list[bytes | None] = [message(n) for n in range(100, 100 + BIG)]
    again = prepare_fetched(fetched(more), ParseLimits(), tmp_path)
    assert all(isinstance(o, Ready) for o in again.outcomes())


def test_a_parser_process_cannot_take_more_memory_than_its_cap() -> None:
    probe = (
        "from crmsync.sync.incoming.parser_pool import _cap_memory, PARSER_MEMORY_BYTES\n"
        "_cap_memory()\n"
        "try:\n    bytearray(PARSER_MEMORY_BYTES + (1 << 28))\nexcept MemoryError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "refused", done.stderr


def test_a_batch_fetched_ahead_survives_the_pool_being_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parser_pool, "PARSE_SECONDS", 1.0)
    monkeypatch.setattr(parser_pool, "TASK_MESSAGES", 4)
    hanging: list[bytes | None] = [message(n) for n in range(BIG)]
    hanging[0] = message(0, "X-Test: hang\r\n")
    following: list[bytes | None] = [message(n) for n in range(100, 100 + BIG)]
    # Both batches are in the pool before the first one's outcomes are asked for, as
    # with the fetch thread running ahead; replacing the pool cancels the second's tasks.
    first = PendingBatch(fetched(hanging), ParseLimits(), tmp_path, misbehaving_prepare_one)
    second = PendingBatch(fetched(following), ParseLimits(), tmp_path, misbehaving_prepare_one)

    assert isinstance(first.outcomes()[0], Unparsed)
    assert all(isinstance(o, Ready) for o in second.outcomes())


_ENGINE = """
import multiprocessing.forkserver, sys
from crmsync.sync.incoming import parser_pool
parser_pool.warm_up()
executor = parser_pool._pool.get()
pids = [*executor._processes, multiprocessing.forkserver._forkserver._forkserver_pid]
print(" ".join(map(str, pids)), flush=True)
sys.stdin.read()  # until killed
"""


def test_parser_processes_end_with_a_killed_engine() -> None:
    engine = subprocess.Popen(
        [sys.executable, "-c", _ENGINE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert engine.stdout is not None
    pids = [int(pid) for pid in engine.stdout.readline().split()]
    assert len(pids) >= 2, "a parser process and the fork server"
    engine.kill()  # SIGKILL: no atexit, no executor shutdown
    engine.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _running(pid)]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_an_abandoned_batch_leaves_no_staged_attachments(tmp_path: Path) -> None:
    pending = prepare_fetched(fetched([message(1), message(2)]), ParseLimits(), tmp_path)
    pending.outcomes()  # prepared (in a parser process): the attachments are staged
    assert list((tmp_path / STAGING).iterdir())
    pending.abandon()
    assert not list((tmp_path / STAGING).iterdir())


def test_a_single_new_message_that_hangs_its_parser_is_flagged_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The common case of a poll: one new message. It too is parsed under the time limit.
    monkeypatch.setattr(parser_pool, "PARSE_SECONDS", 1.0)
    raw = message(1, "X-Test: hang\r\n")
    (outcome,) = PendingBatch(
        fetched([raw]), ParseLimits(), tmp_path, misbehaving_prepare_one
    ).outcomes()
    assert isinstance(outcome, Unparsed)
    assert "took over" in outcome.error.detail
    assert blob_path(tmp_path, outcome.raw_sha256).read_bytes() == raw
