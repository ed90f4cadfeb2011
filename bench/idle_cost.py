"""Idle cost: CPU spent by crmsync on a no-change poll of many mailboxes.

    uv run python -m bench.idle_cost [--mailboxes 1000]

Every mailbox gets one message and a first sync; then every mailbox is polled again
with nothing new. Prints crmsync's CPU time (user+system, this process) and wall time
for that no-change pass, in total and per mailbox. Dovecot's own CPU is not included.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.setup import add_mailbox, connected_store, work_directory
from crmsync.sync.incoming import IncomingOptions, sync_incoming
from tests.servers import DovecotServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=1000)
    args = parser.parse_args()
    with work_directory("crmsync-idle-") as work:
        with DovecotServer(work / "dovecot") as dovecot:
            users = dovecot.add_users(
                [(f"idle{n}", f"idle-password-{n}") for n in range(args.mailboxes)]
            )
            store, box, first = connected_store(dovecot, users[0], work / "crm", None)
            ids = [first] + [add_mailbox(store, box, user) for user in users[1:]]
            for user in users:
                dovecot.deliver(user, b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n")
            options = IncomingOptions()
            for mailbox_id in ids:
                sync_incoming(store, box, mailbox_id, options)
            cpu = os.times()
            started = time.perf_counter()
            for mailbox_id in ids:
                report = sync_incoming(store, box, mailbox_id, options)
                assert report.seen == 0, report
            wall = time.perf_counter() - started
            after = os.times()
            used = (after.user - cpu.user) + (after.system - cpu.system)
            store.dispose()
        count = len(ids)
        print(
            f"no-change poll of {count} mailboxes: CPU {used:.2f} s "
            f"({used / count * 1000:.1f} ms each), wall {wall:.2f} s "
            f"({wall / count * 1000:.1f} ms each)"
        )


if __name__ == "__main__":
    main()
