"""Push latency: from LMTP delivery to the tracked email being readable, with IDLE.

    uv run python -m bench.latency [--messages 200]

A real Dovecot and the embedded runtime (IDLE watchers, scheduler) on a fresh SQLite
CRM; messages are delivered one at a time and each is timed until its activity can be
read from the store. Prints p50, p90, p99 and max. Figures only, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from email.message import EmailMessage

from sqlalchemy import select

from bench.setup import connected_store, work_directory
from crmsync.crm.models import Email
from crmsync.runtime.embedded import EmbeddedRuntime
from tests.servers import DovecotServer


def _message(number: int, to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Nancy Buyer <nancy@fabrikam.example>"
    message["To"] = to
    message["Subject"] = f"latency probe {number}"
    message["Message-ID"] = f"<latency-{number}@fabrikam.example>"
    message.set_content("How fast does this show up in the CRM?\n" * 20)
    return message.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    with work_directory("crmsync-latency-") as work:
        with DovecotServer(work / "dovecot") as dovecot:
            user = dovecot.add_user("latency", "latency-password")
            store, box, mailbox_id = connected_store(dovecot, user, work / "crm", None)
            runtime = EmbeddedRuntime(store, box, tick=1.0)
            stop = asyncio.Event()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_until_complete, args=(runtime.run(stop),))
            thread.start()
            deadline = time.monotonic() + 30
            while mailbox_id not in runtime.watchers and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)
            samples = []
            for number in range(args.messages):
                wanted = f"<latency-{number}@fabrikam.example>"
                started = time.perf_counter()
                dovecot.deliver(user, _message(number, user.address))
                while True:
                    with store.transaction() as session:
                        if session.scalar(select(Email.id).where(Email.message_id == wanted)):
                            break
                    if time.perf_counter() - started > 60:
                        raise RuntimeError(f"{wanted} not tracked within 60 s")
                    time.sleep(0.005)
                samples.append(time.perf_counter() - started)
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=60)
            store.dispose()
        samples.sort()
        quantiles = statistics.quantiles(samples, n=100)
        print(f"{len(samples)} messages, delivery → readable in the store (IDLE push):")
        print(
            f"p50 {quantiles[49] * 1000:.0f} ms  p90 {quantiles[89] * 1000:.0f} ms  "
            f"p99 {quantiles[98] * 1000:.0f} ms  max {samples[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
