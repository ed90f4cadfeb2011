"""Ingest benchmark: end-to-end tracked messages per second from an empty CRM, against
mbsync's and offlineimap's raw download of the same mailbox, measured in the same run.

    uv run python -m bench.ingest [--messages 10000] [--database sqlite|postgresql]
                                  [--repeat 3] [--skip-offlineimap]

A deterministic corpus (bench/corpus.py) is written into a real Dovecot's maildir; then,
one after another over loopback IMAP: mbsync (isync, ``FSync no``) into a local maildir,
offlineimap into another, and ``sync_incoming`` into a fresh CRM store with its normal
durability settings, on the same filesystem. mbsync and crmsync run ``--repeat`` times,
interleaved — on a shared machine mbsync's own speed varies threefold from run to run —
and the medians are printed with every run's figure; then crmsync's own figures, which
do not depend on mbsync's luck: messages/s and CPU seconds per 1,000 messages (crmsync's
process and its parser processes; the database server's CPU is not counted); then the
ratio to mbsync, and crmsync's peak memory. Never pass/fail: figures only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path
from statistics import median

from bench.corpus import generate
from bench.setup import connected_store, process_tree_cpu, settle_disk, timed, work_directory
from crmsync.sync.incoming import IncomingOptions, sync_incoming
from crmsync.sync.incoming.parser_pool import warm_up
from tests.servers import DovecotServer, MailUser, fresh_database
from tests.servers.dovecot_conf import MAIL_GID, MAIL_UID

CACHE = Path(__file__).resolve().parent / ".cache"


def corpus(count: int) -> list[bytes]:
    """The corpus, generated once and kept under bench/.cache (it takes a while)."""
    folder = CACHE / f"corpus-{count}"
    if not folder.exists():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for number, raw in enumerate(generate(count)):
            (tmp / f"{number:06d}.eml").write_bytes(raw)
        tmp.rename(folder)
    return [path.read_bytes() for path in sorted(folder.iterdir())]


def fill_maildir(dovecot: DovecotServer, login: str, messages: list[bytes]) -> None:
    """Write messages straight into the user's maildir, then let Dovecot index them."""
    home = dovecot.directory / "mail" / login / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    for number, raw in enumerate(messages):
        (home / "cur" / f"{now}.M{number}P1.bench,S={len(raw)}:2,").write_bytes(raw)
    for path in [home.parent, *home.parent.rglob("*")]:
        os.chown(path, MAIL_UID, MAIL_GID)
    dovecot.doveadm("force-resync", "-u", login, "INBOX", timeout=600)


def run_mbsync(dovecot: DovecotServer, login: str, password: str, work: Path) -> float:
    target = work / "mbsync"
    target.mkdir(parents=True)
    config = work / "mbsyncrc"
    config.write_text(
        "FSync no\n\n"
        f"IMAPAccount bench\nHost 127.0.0.1\nPort {dovecot.imap_port}\nUser {login}\n"
        f"Pass {password}\nSSLType None\nAuthMechs LOGIN PLAIN\n\n"
        "IMAPStore remote\nAccount bench\n\n"
        f"MaildirStore local\nPath {target}/\nInbox {target}/INBOX\n\n"
        "Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nSync Pull\nCreate Near\n"
        "SyncState *\n"
    )
    return timed(["mbsync", "-c", str(config), "-q", "bench"])


def run_offlineimap(dovecot: DovecotServer, login: str, password: str, work: Path) -> float:
    target = work / "offlineimap"
    target.mkdir(parents=True)
    config = work / "offlineimaprc"
    config.write_text(
        "[general]\naccounts = bench\nmetadata = " + str(work / "offlineimap-meta") + "\n"
        "ui = quiet\n\n[Account bench]\nlocalrepository = local\nremoterepository = remote\n\n"
        f"[Repository local]\ntype = Maildir\nlocalfolders = {target}\n\n"
        f"[Repository remote]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = "
        f"{dovecot.imap_port}\nremoteuser = {login}\nremotepass = {password}\nssl = no\n"
        "starttls = no\nfolderfilter = lambda folder: folder == 'INBOX'\n"
    )
    return timed(["offlineimap", "-c", str(config), "-o", "-u", "quiet"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--skip-offlineimap", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of mbsync and crmsync, interleaved"
    )
    args = parser.parse_args()

    messages = corpus(args.messages)
    total_bytes = sum(len(raw) for raw in messages)
    print(f"corpus: {len(messages)} messages, {total_bytes / 1e6:.1f} MB")
    with work_directory("crmsync-bench-") as work:
        with DovecotServer(work / "dovecot") as dovecot:
            user = dovecot.add_user("bench", "bench-password")
            fill_maildir(dovecot, user.login, messages)
            runs: dict[str, list[float]] = {"mbsync": [], "crmsync": []}
            cpu: list[float] = []
            tracked = 0
            # Interleaved, so that both meet the same moments of a shared machine.
            for run in range(args.repeat):
                runs["mbsync"].append(
                    run_mbsync(dovecot, user.login, user.password, work / f"run-{run}")
                )
                if args.database == "postgresql":
                    with fresh_database() as url:
                        run_ = _crmsync(dovecot, user, work / f"run-{run}", url)
                else:
                    run_ = _crmsync(dovecot, user, work / f"run-{run}", None)
                seconds, cpu_seconds, tracked = run_
                runs["crmsync"].append(seconds)
                cpu.append(cpu_seconds)
                shutil.rmtree(work / f"run-{run}", ignore_errors=True)
            if not args.skip_offlineimap:
                runs["offlineimap"] = [
                    run_offlineimap(dovecot, user.login, user.password, work / "offlineimap-run")
                ]
        rate = {name: [len(messages) / s for s in seconds] for name, seconds in runs.items()}
        for name, rates in rate.items():
            listed = ", ".join(f"{r:.0f}" for r in rates)
            print(f"{name:12s} median {median(rates):7.0f} messages/s  (runs: {listed})")
        print(f"crmsync tracked {tracked} of {len(messages)} messages")
        per_thousand = [1000 * c / len(messages) for c in cpu]
        listed = ", ".join(f"{c:.2f}" for c in per_thousand)
        print(
            f"crmsync on its own: median {median(rate['crmsync']):.0f} messages/s, "
            f"{median(per_thousand):.2f} CPU s per 1,000 messages  (runs: {listed})"
        )
        ratios = [c / m for c, m in zip(rate["crmsync"], rate["mbsync"], strict=True)]
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"crmsync / mbsync ratio: median {median(ratios):.2f}  (runs: {listed})")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory (this process, incl. corpus in memory): {peak:.0f} MB")


def _crmsync(
    dovecot: DovecotServer, user: MailUser, work: Path, url: str | None
) -> tuple[float, float, int]:
    """One timed pass: wall seconds, CPU seconds of crmsync's processes, messages tracked."""
    store, box, mailbox_id = connected_store(dovecot, user, work / "crm", url)
    # A running engine starts its parser processes once, when it starts (runtime/embedded.py).
    warm_up()
    settle_disk()
    cpu_before = process_tree_cpu()
    started = time.perf_counter()
    report = sync_incoming(store, box, mailbox_id, IncomingOptions())
    seconds = time.perf_counter() - started
    cpu_seconds = process_tree_cpu() - cpu_before
    assert report.error is None, report.error
    store.dispose()
    return seconds, cpu_seconds, report.tracked


if __name__ == "__main__":
    main()
