"""Make fetched messages ready for the store, on every core: raw blob, parse, display HTML.

What it is for: between fetching a batch and the transaction that stores it, each
message's raw bytes are written to the blob store, parsed under ``ParseLimits``, its
HTML sanitized for display and its attachments hashed. That is nearly all of the CPU an
incoming message costs, and none of it needs the database, so it runs in a pool of
parser processes (the GIL would serialise it in threads), a few messages per task, while
the engine's own process talks to the mail server and the database.

    Fetched ──▶ Ready     (parsed; raw blob written and attachments staged, not yet durable)
           ├──▶ Unparsed  (malformed, too slow, or crashed the parser; raw blob written)
           └──▶ SyncError (too large: never downloaded, nothing written)

What it must never do: lose a message's raw bytes (every outcome but "too large" has
them in the blob store), let one message stop its batch, or import the ORM or the engine
(a parser process starts in a tenth of a second because this module and what it imports
are light). Blob files written here are durable only once the engine has synced the
blob store, which it does before the commit that refers to them.

Limits: a task gets ``PARSE_SECONDS`` per message it carries; a task over time, or a
parser process that dies (its memory is capped at ``PARSER_MEMORY_BYTES``), has its
messages redone one per task in a fresh pool, so the one at fault is flagged alone.
The pool has one process per core but one. Every batch goes to it, even a single new
message — a pool round trip costs a millisecond or two, and it is what bounds a message
that would make the parser loop (some inputs make the stdlib parser quadratic). Only on
one core are messages prepared in-process, under the size, part and depth limits alone.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import resource
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

from crmsync.core.errors import ErrorCode, SyncError
from crmsync.crm.blobfiles import digest, discard_staged, stage_blob, write_blob
from crmsync.tracking.display import display_html
from crmsync.tracking.parse import (
    MalformedMessage,
    MalformedReason,
    ParsedMessage,
    ParseLimits,
    parse_message,
)

TASK_MESSAGES = 16  # messages per pool task: fewer round trips, still an even spread
PARSE_SECONDS = 30.0
PARSER_MEMORY_BYTES = 2 << 30


@dataclass(frozen=True)
class Fetched:
    """One message as fetched: where it is, its bytes (None when too large to fetch)."""

    folder: str
    uidvalidity: int
    uid: int
    uidl: str | None
    raw: bytes | None
    size: int


@dataclass(frozen=True, slots=True, repr=False)
class Ready:
    """A parsed message whose raw bytes are in the blob store."""

    raw_sha256: str
    # Without html_body (``description`` is what is shown) and without attachment bytes
    # (they are staged in the blob store): what does not cross between the processes
    # costs nothing to send.
    parsed: ParsedMessage
    description: str  # sanitized HTML, safe to show (tracking.display)
    attachment_sha256: tuple[str, ...]  # one per parsed.attachments
    attachment_staged: tuple[str, ...]  # their staged files (blobfiles.stage_blob)

    def __repr__(self) -> str:
        return f"Ready({self.raw_sha256[:12]}, {self.parsed!r})"


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A message that could not be parsed; its raw bytes are in the blob store."""

    raw_sha256: str
    error: MalformedMessage


Outcome = Ready | Unparsed | SyncError


def prepare_one(raw: bytes, limits: ParseLimits, blob_root: Path) -> Ready | Unparsed:
    sha256 = write_blob(blob_root, raw)
    try:
        parsed = parse_message(raw, limits)
    except MalformedMessage as exc:
        return Unparsed(sha256, exc)
    except MemoryError:
        return Unparsed(sha256, MalformedMessage(MalformedReason.UNPARSEABLE, _OUT_OF_MEMORY))
    parts = parsed.attachments
    return Ready(
        sha256,
        replace(
            parsed,
            html_body=None,
            attachments=tuple(replace(part, data=b"") for part in parts),
        ),
        display_html(parsed),
        tuple(digest(part.data) for part in parts),
        tuple(stage_blob(blob_root, part.data) for part in parts),
    )


PrepareOne = Callable[[bytes, ParseLimits, Path], Ready | Unparsed]


def prepare_many(
    raws: list[bytes], limits: ParseLimits, blob_root: Path, one: PrepareOne = prepare_one
) -> list[Ready | Unparsed]:
    """The task a parser process runs: several messages, one result each, in order.

    ``one`` is ``prepare_one`` but in tests, which hand in one that hangs or crashes.
    """
    return [one(raw, limits, blob_root) for raw in raws]


_OUT_OF_MEMORY = f"parsing needed over {PARSER_MEMORY_BYTES >> 20} MiB"
_TOO_SLOW = f"parsing took over {PARSE_SECONDS:.0f} s"
_CRASHED = "the parser process died on this message"


def _start_parser_process(engine_pid: int) -> None:
    """Pool initializer: freeze what the process inherited, cap its memory, and end it
    with the engine.

    A parser process is a fork of the fork server, which imported the engine. Python's
    cyclic garbage collector would otherwise walk every inherited object on each full
    collection — writing to each, so the kernel copies every shared page. ``gc.freeze``
    moves them out of the collector's sight (the use the Python documentation gives).
    """
    gc.freeze()
    _cap_memory()
    _exit_with(engine_pid)


def _exit_with(engine_pid: int) -> None:
    """End this process when the engine's ends, however it ends (SIGKILL included).

    A pool's worker otherwise waits for work forever once its engine is gone, and keeps
    the fork server alive with it: every restart of ``crmsync serve`` would leave two
    processes behind. A pidfd (Linux 5.3+) wakes the watcher at once; elsewhere it polls.
    """
    try:
        pidfd: int | None = os.pidfd_open(engine_pid)
    except (AttributeError, OSError):  # not Linux, or the engine is already gone
        pidfd = None

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])
        else:
            while _alive(engine_pid):
                time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="engine-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError also means the process is there
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _cap_memory() -> None:
    """A parser process that needs more than ``PARSER_MEMORY_BYTES`` fails, not the host."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = PARSER_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, PARSER_MEMORY_BYTES)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


class _Pool:
    """One pool of parser processes per crmsync process, made on first use and replaced
    when broken. ``forkserver`` keeps the children free of this process's database
    connections and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def get(self) -> ProcessPoolExecutor | None:
        # One core stays with the engine's own process (the fetch thread and the
        # database): on two cores, one parser process ingested 15-25% faster than two
        # (bench/ingest.py), which fought the engine and the mail server for the CPU.
        workers = (os.cpu_count() or 1) - 1
        if workers < 1:
            return None
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                # Each child re-imports the main module unless the fork server did so
                # first (multiprocessing's spawn preparation): then every parser process
                # is a fork of one warm process, ready in milliseconds, not a second each.
                context.set_forkserver_preload(["__main__", __name__])
                self._executor = ProcessPoolExecutor(
                    max_workers=workers,
                    mp_context=context,
                    initializer=_start_parser_process,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def discard(self, executor: ProcessPoolExecutor) -> None:
        """Kill a pool with a stuck or dead process; the next ``get`` makes a fresh one."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        # ProcessPoolExecutor has no public way to stop a running task.
        # (A broken pool has already dropped its table of processes.)
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)


_pool = _Pool()


class PendingBatch:
    """A batch being prepared; ``outcomes()`` waits for it: one ``Outcome`` per item."""

    def __init__(
        self,
        items: list[Fetched],
        limits: ParseLimits,
        blob_root: Path,
        one: PrepareOne = prepare_one,
    ) -> None:
        self.items = items
        self._limits = limits
        self._root = blob_root
        self._one = one
        self._tasks: list[tuple[list[bytes], Future[list[Ready | Unparsed]]]] = []
        self._executor: ProcessPoolExecutor | None = None
        self._done: list[Ready | Unparsed] | None = None
        raws = [item.raw for item in items if item.raw is not None]
        executor = _pool.get() if raws else None
        if executor is not None:
            # The raw blobs are written here, in the engine's process, which mostly waits
            # (on the server, on the parsers) while the parser process is the busiest;
            # creating files is costly kernel work that needs no GIL. The parser then
            # finds each blob in place.
            for raw in raws:
                write_blob(blob_root, raw)
            try:
                for start in range(0, len(raws), TASK_MESSAGES):
                    chunk = raws[start : start + TASK_MESSAGES]
                    future = executor.submit(prepare_many, chunk, limits, blob_root, one)
                    self._tasks.append((chunk, future))
                self._executor = executor
                return
            except (BrokenProcessPool, RuntimeError):  # broken, or shut down meanwhile
                _pool.discard(executor)
                self._tasks = []
        self._done = prepare_many(raws, limits, blob_root, one)

    def outcomes(self) -> list[Outcome]:
        prepared = self._done if self._done is not None else self._collect()
        results = iter(prepared)
        return [
            next(results)
            if item.raw is not None
            else SyncError(ErrorCode.MESSAGE_TOO_LARGE, f"{item.size} bytes")
            for item in self.items
        ]

    def abandon(self) -> None:
        """The engine stopped before storing this batch: remove its staged attachments.

        (Its raw blobs stay: content-addressed, they are reused when the batch is redone.)
        """
        discard_leftovers(self._root, self.outcomes())

    def _collect(self) -> list[Ready | Unparsed]:
        assert self._executor is not None
        prepared: list[Ready | Unparsed] = []
        for chunk, future in self._tasks:
            try:
                prepared.extend(future.result(timeout=PARSE_SECONDS * len(chunk)))
            except (TimeoutError, BrokenProcessPool, CancelledError):
                # Cancelled: an earlier task's failure shut this pool down before this
                # task ran (it may belong to a batch fetched ahead).
                _pool.discard(self._executor)
                prepared.extend(self._one_by_one(chunk))
        self._done = prepared
        return prepared

    def _one_by_one(self, chunk: list[bytes]) -> list[Ready | Unparsed]:
        """Redo a failed task a message at a time, each in a pool of its own if need be,
        so that only the message that hangs or kills its parser is flagged."""
        out: list[Ready | Unparsed] = []
        for raw in chunk:
            executor = _pool.get()
            if executor is None:  # pragma: no cover - a pool existed a moment ago
                out.append(self._one(raw, self._limits, self._root))
                continue
            try:
                future = executor.submit(self._one, raw, self._limits, self._root)
                out.append(future.result(timeout=PARSE_SECONDS))
            except (TimeoutError, BrokenProcessPool) as exc:
                _pool.discard(executor)
                reason = _TOO_SLOW if isinstance(exc, TimeoutError) else _CRASHED
                sha256 = write_blob(self._root, raw)
                out.append(Unparsed(sha256, MalformedMessage(MalformedReason.UNPARSEABLE, reason)))
        return out


def prepare_fetched(items: list[Fetched], limits: ParseLimits, blob_root: Path) -> PendingBatch:
    """Start preparing a batch (in parser processes when it is big enough)."""
    return PendingBatch(items, limits, blob_root)


def discard_leftovers(blob_root: Path, outcomes: list[Outcome]) -> None:
    """After a batch, whatever happened to it: remove the staged attachment files that
    were not published (store_batch publishes the ones it keeps)."""
    discard_staged(
        blob_root,
        (
            name
            for outcome in outcomes
            if isinstance(outcome, Ready)
            for name in outcome.attachment_staged
        ),
    )


def warm_up() -> None:
    """Start the parser processes now rather than on the first big batch (they take a
    second or two to import the engine), e.g. when a long-running engine starts."""
    executor = _pool.get()
    if executor is not None:
        executor.submit(int).result()
