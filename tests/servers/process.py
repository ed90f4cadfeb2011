"""Process plumbing shared by the test servers: ports, bounded waits, spawning, killing.

What it is for: every server in ``tests/servers`` runs as a child process in its own
process group (``start_new_session``) that also receives SIGTERM if the process that
started it dies (Linux ``PR_SET_PDEATHSIG``), so a crashed or killed pytest session does
not leave servers behind. Servers still running when the interpreter exits are stopped by
an ``atexit`` hook registered on the first ``track()``.

What it must never do: wait without a deadline, signal a process group it did not create,
or touch anything outside the throwaway directories the servers were given.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """A test server did not become ready; the message carries the tail of its log."""


class Stoppable(Protocol):
    def stop(self) -> None: ...


_live: list[Stoppable] = []
_atexit_registered = False


def track(server: Stoppable) -> None:
    """Remember a started server so that it is stopped at interpreter exit at the latest."""
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_stop_all)
        _atexit_registered = True
    if server not in _live:
        _live.append(server)


def untrack(server: Stoppable) -> None:
    if server in _live:
        _live.remove(server)


def _stop_all() -> None:
    for server in reversed(list(_live)):
        with contextlib.suppress(Exception):
            server.stop()


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    abort: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``condition`` until it is true; raise ``TimeoutError`` after ``timeout`` seconds.

    ``abort`` may return a reason to stop waiting early (e.g. "process exited with 1").
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if abort is not None and (reason := abort()) is not None:
            raise TimeoutError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(
    argv: Sequence[str], *, log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout+stderr appended to ``log_path``.

    The child gets SIGTERM when this process dies -- strictly, when the *thread* that
    called ``spawn`` exits (Linux semantics of PR_SET_PDEATHSIG), so start servers from
    the main thread or a thread that outlives them. ``REPO_ROOT`` is put on PYTHONPATH
    so that ``python -m tests.servers...`` works from any working directory.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or REPO_ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )


def kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal a process group we created; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def terminate(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGTERM the child's process group, wait up to ``timeout``, then SIGKILL it."""
    if proc.poll() is None:
        kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    # Children that outlived their leader still carry its process group id.
    kill_group(proc.pid, signal.SIGKILL)


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class ServerLifecycle:
    """The context-manager protocol every test server shares.

    ``with Server(...) as server:`` starts it — stopping whatever half-started if
    starting fails — and stops it on the way out. Subclasses give ``start`` and ``stop``.
    """

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
