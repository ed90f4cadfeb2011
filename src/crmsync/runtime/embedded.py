"""The embedded runtime: the sync engine inside ``crmsync serve``, on asyncio.

Every ``tick`` the scheduler asks crmsync.sync.schedule which incoming channels are due,
adds those an IDLE watcher woke, and runs ``sync_incoming`` for each in a thread pool
(the engine is blocking I/O); a mailbox is never run twice at once here, and the
database lease keeps it so across processes too. IDLE watchers are started for
IMAP mailboxes whose incoming channel is enabled and stopped when it no longer is.
Each tick also runs ``sync_outgoing`` for mailboxes with email due to be sent
(crmsync.sync.outgoing.due_outgoing), in the same pool, one pass per mailbox at a time.
Both count into the application's Prometheus metrics when given (crmsync.metrics); a
pass an IDLE notice triggered carries the notice's time, for its push latency. Once an
hour it purges alerts and resolved item failures past each organisation's retention.

Must never let one mailbox's failure stop the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from crmsync.core.types import Channel, Protocol
from crmsync.crm.alerts import purge_expired
from crmsync.crm.blobfiles import sweep_staging
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics
from crmsync.runtime.push import IdleWatcher
from crmsync.sync.context import Runnable, load_context
from crmsync.sync.incoming import IncomingOptions, sync_incoming
from crmsync.sync.incoming.parser_pool import warm_up
from crmsync.sync.outgoing import OutgoingOptions, due_outgoing, sync_outgoing
from crmsync.sync.schedule import due_mailboxes

log = logging.getLogger(__name__)

WATCHER_REFRESH_SECONDS = 60.0
PURGE_SECONDS = 3600.0


def _start_up(store: Store) -> None:
    """Once, as the engine starts: remove staged attachment files a crash left behind
    (sync/incoming/parser_pool.py), and start the parser processes, which take a second or
    two."""
    sweep_staging(store.blobs.root)
    try:
        warm_up()
    except Exception:  # without parser processes, messages are parsed in-process
        log.exception("runtime: could not start the parser processes")


def _purge(store: Store) -> None:
    """Alerts and resolved item failures past their organisation's retention."""
    try:
        with store.transaction() as session:
            purged = purge_expired(session, utcnow())
    except Exception:  # the next hour tries again; the engine goes on meanwhile
        log.exception("runtime: could not purge expired alerts")
        return
    if purged:
        log.info("purged %d expired alerts and item failures", purged)


class EmbeddedRuntime:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        *,
        tick: float = 1.0,
        workers: int = 4,
        push: bool = True,
        options: IncomingOptions | None = None,
        metrics: SyncMetrics | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.tick = tick
        self.push = push
        base = options or IncomingOptions()
        self.metrics = metrics or base.metrics
        self.options = replace(base, metrics=self.metrics)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync")
        self.running: set[uuid.UUID] = set()
        self.sending: set[uuid.UUID] = set()  # mailboxes with an outgoing pass under way
        # Mailboxes an IDLE watcher woke → the earliest server notice not yet synced.
        self.woken: dict[uuid.UUID, datetime | None] = {}
        self.watchers: dict[uuid.UUID, IdleWatcher] = {}
        # Mailboxes that just synced without a watcher: start one at the next tick.
        self.watch_soon: set[uuid.UUID] = set()
        self.lock = threading.Lock()
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self, mailbox_id: uuid.UUID, noticed_at: datetime | None = None) -> None:
        """Thread-safe: make ``mailbox_id`` due now (called by IDLE watchers)."""
        with self.lock:
            earlier = self.woken.get(mailbox_id)
            self.woken[mailbox_id] = min(
                (when for when in (earlier, noticed_at) if when is not None), default=None
            )
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        # While the first ticks run, not when the first mailbox needs it.
        self._loop.run_in_executor(None, _start_up, self.store)
        next_watch_check = 0.0
        next_purge = self._loop.time() + 60.0  # not in the busy first minute
        try:
            while not stop.is_set():
                now = self._loop.time()
                if now >= next_purge:
                    self._loop.run_in_executor(None, _purge, self.store)
                    next_purge = now + PURGE_SECONDS
                if self.push and now >= next_watch_check:
                    await self._loop.run_in_executor(None, self._refresh_watchers)
                    next_watch_check = now + WATCHER_REFRESH_SECONDS
                elif self.push and self.watch_soon:
                    with self.lock:
                        soon, self.watch_soon = self.watch_soon, set()
                    await self._loop.run_in_executor(None, self._refresh_watchers, soon)
                await self._dispatch()
                self._wakeup.clear()
                waiters = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._wakeup.wait()),
                ]
                await asyncio.wait(waiters, timeout=self.tick, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        finally:
            for watcher in self.watchers.values():
                watcher.stop()
            # Let running syncs finish (each is bounded) so nothing is cut off mid-commit
            # and nobody uses the store after the app has let it go.
            await self._loop.run_in_executor(None, self._drain)

    def _drain(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    async def _dispatch(self) -> None:
        assert self._loop is not None
        try:
            due = await self._loop.run_in_executor(None, self._due)
        except Exception:
            log.exception("scheduler: could not read due mailboxes")
            return
        with self.lock:
            wanted = (set(due) | set(self.woken)) - self.running
            pushed = {mailbox_id: self.woken.pop(mailbox_id, None) for mailbox_id in wanted}
            self.running |= wanted
        for mailbox_id in wanted:
            self.pool.submit(self._sync_one, mailbox_id, pushed[mailbox_id])
        try:
            outgoing = await self._loop.run_in_executor(None, self._due_outgoing)
        except Exception:
            log.exception("scheduler: could not read due outgoing email")
            return
        with self.lock:
            to_send = set(outgoing) - self.sending
            self.sending |= to_send
        for mailbox_id in to_send:
            self.pool.submit(self._send_one, mailbox_id)

    def _due_outgoing(self) -> list[uuid.UUID]:
        with self.store.transaction() as session:
            return due_outgoing(session, utcnow())

    def _send_one(self, mailbox_id: uuid.UUID) -> None:
        try:
            options = OutgoingOptions(metrics=self.metrics)
            # The engine logs the pass itself, with codes only (never a recipient).
            sync_outgoing(self.store, self.box, mailbox_id, options)
        except Exception:
            log.exception("mailbox %s: outgoing failed", mailbox_id)
        finally:
            with self.lock:
                self.sending.discard(mailbox_id)

    def _due(self) -> list[uuid.UUID]:
        with self.store.transaction() as session:
            return due_mailboxes(session, Channel.INCOMING, utcnow())

    def _sync_one(self, mailbox_id: uuid.UUID, pushed_at: datetime | None = None) -> None:
        try:
            options = replace(self.options, pushed_at=pushed_at) if pushed_at else self.options
            report = sync_incoming(self.store, self.box, mailbox_id, options)
            # A failed pass is logged by the engine, with its code only.
            if (
                report.error is None
                and report.ran
                and self.push
                and mailbox_id not in self.watchers
            ):
                with self.lock:
                    self.watch_soon.add(mailbox_id)
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._wakeup.set)
        except Exception:
            log.exception("mailbox %s: sync failed", mailbox_id)
        finally:
            with self.lock:
                self.running.discard(mailbox_id)

    def _refresh_watchers(self, only: set[uuid.UUID] | None = None) -> None:
        """Start IDLE watchers for enabled IMAP mailboxes; stop those no longer wanted,
        and restart those whose server or credentials changed.

        With ``only``, just start watchers for those mailboxes (after their first sync).
        """
        wanted = {}
        with self.store.transaction() as session:
            ids = only if only is not None else session.scalars(select(Mailbox.id))
            for mailbox_id in ids:
                ctx = load_context(session, self.box, mailbox_id, Channel.INCOMING)
                if not isinstance(ctx, Runnable):
                    continue
                plan = ctx.plan
                if plan.protocol is Protocol.IMAP and plan.incoming:
                    wanted[mailbox_id] = (plan.incoming, plan.credentials)
        for mailbox_id in list(self.watchers) if only is None else []:
            watcher = self.watchers[mailbox_id]
            dead = not watcher.is_alive() and watcher.supported
            # A new password, token or server: the watcher's session would go on with the
            # old ones until it next failed; start it again with what is configured now.
            changed = wanted.get(mailbox_id) != (watcher.endpoint, watcher.credentials)
            if mailbox_id not in wanted or dead or changed:
                watcher.stop()
                del self.watchers[mailbox_id]
        for mailbox_id, (endpoint, credentials) in wanted.items():
            if mailbox_id not in self.watchers:
                watcher = IdleWatcher(mailbox_id, endpoint, credentials, self.wake)
                watcher.start()
                self.watchers[mailbox_id] = watcher
