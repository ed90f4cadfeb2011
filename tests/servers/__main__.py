"""Run the demo server stack until SIGINT/SIGTERM.

    python -m tests.servers --dir DIR [--tls] [--no-radicale] [--password PW]

Starts Dovecot, the SMTP relay and Radicale with users alice, bob and carol @example.test,
prints ports, users and paths as JSON on stdout and writes the same JSON to
DIR/servers.json. Without ``--dir`` a temporary directory is used and removed at the end.

What it must never do: exit without stopping the servers it started.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from tests.servers.stack import ServerStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__)
    parser.add_argument("--dir", type=Path, help="where the servers keep their files")
    parser.add_argument("--tls", action="store_true", help="IMAPS/POP3S/STARTTLS/HTTPS too")
    parser.add_argument("--no-radicale", action="store_true", help="skip CalDAV/CardDAV")
    parser.add_argument("--password", help="password of the demo users (default: random)")
    args = parser.parse_args(argv)

    temporary = args.dir is None
    directory: Path = args.dir or Path(tempfile.mkdtemp(prefix="crmsync-servers-"))
    directory.mkdir(parents=True, exist_ok=True)
    if temporary:
        directory.chmod(0o755)  # Dovecot's unprivileged processes must reach their files
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack = ServerStack(
        directory, tls=args.tls, with_radicale=not args.no_radicale, password=args.password
    )
    try:
        with stack:
            text = json.dumps(stack.describe(), indent=2)
            (directory / "servers.json").write_text(text + "\n")
            print(text, flush=True)
            print("servers running; Ctrl-C or SIGTERM stops them", file=sys.stderr, flush=True)
            while not stop.wait(1.0):
                dead = [
                    name
                    for name, server in (
                        ("dovecot", stack.dovecot),
                        ("smtp", stack.smtp),
                        ("radicale", stack.radicale),
                    )
                    if server is not None and not server.running
                ]
                if dead:
                    print(f"server(s) died: {', '.join(dead)}; stopping", file=sys.stderr)
                    return 1
        print("servers stopped", file=sys.stderr)
        return 0
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
