"""An IMAP proxy for tests that hides optional response codes of the real Dovecot.

    with ImapFilterProxy(dovecot.imap_port, hide_status_uidnext=True) as proxy:
        ... connect to 127.0.0.1:proxy.port (plain IMAP, no STARTTLS) ...

What it is for: RFC 3501 lets a server leave ``[UIDNEXT n]`` out of SELECT ("the client
can not make any assumptions"), and servers nobody here tuned for do. Rather than fake
such a server, the proxy sits on loopback in front of Dovecot's plain IMAP port and
removes, from what the server sends:
- every untagged ``* OK [UIDNEXT n] ...`` line (SELECT/EXAMINE's response code);
- with ``hide_status_uidnext``, the ``UIDNEXT n`` pair of ``* STATUS`` answers too, so a
  client must fall back to ``UID FETCH *``;
- ``STARTTLS`` from capability lists, so the connection stays plain and readable here.
Everything else passes through byte for byte, in both directions: Dovecot does the real
work (logins, messages, UIDs).

What it must never do: listen beyond 127.0.0.1, change what the client sends, or alter a
line other than those above (message literals are passed on as they are: a body line
that happens to read ``* OK [UIDNEXT 5]`` would be dropped, which no test message does).
"""

from __future__ import annotations

import asyncio
import re
import threading
from types import TracebackType
from typing import Self

_SELECT_UIDNEXT = re.compile(rb"^\* OK \[UIDNEXT \d+\][^\r\n]*\r?\n$", re.IGNORECASE)
_STATUS_LINE = re.compile(rb"^\* STATUS ", re.IGNORECASE)
_STATUS_UIDNEXT = re.compile(rb"\bUIDNEXT \d+ ?", re.IGNORECASE)
_STARTTLS = re.compile(rb" STARTTLS\b", re.IGNORECASE)
LINE_LIMIT = 64 * 1024 * 1024  # a literal line of a large message must not overrun


def filter_line(line: bytes, *, hide_status_uidnext: bool = False) -> bytes:
    """One server line, as the client is to see it (``b""`` drops it).

    ``b"* OK [UIDNEXT 4] Predicted next UID\\r\\n"`` → ``b""``;
    ``b'* STATUS "INBOX" (UIDNEXT 4)\\r\\n'`` → ``b'* STATUS "INBOX" ()\\r\\n'`` when hiding it.
    """
    if _SELECT_UIDNEXT.match(line):
        return b""
    if hide_status_uidnext and _STATUS_LINE.match(line):
        return _STATUS_UIDNEXT.sub(b"", line).replace(b" )", b")")
    if b"CAPABILITY" in line.upper():
        return _STARTTLS.sub(b"", line)
    return line


class ImapFilterProxy:
    """The proxy, served by an event loop in a thread of its own (see module docstring)."""

    def __init__(self, upstream_port: int, *, hide_status_uidnext: bool = False) -> None:
        self.upstream_port = upstream_port
        self.hide_status_uidnext = hide_status_uidnext
        self.port = 0
        self.hidden = 0  # lines dropped or changed, so a test can see the proxy worked
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = future.result(timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=LINE_LIMIT)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port, limit=LINE_LIMIT
            )
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, server_w, filtered=False),
            self._pipe(server_r, client_w, filtered=True),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, filtered: bool
    ) -> None:
        try:
            while line := await reader.readline():
                if filtered:
                    shown = filter_line(line, hide_status_uidnext=self.hide_status_uidnext)
                    self.hidden += shown != line
                    line = shown
                if line:
                    writer.write(line)
                    await writer.drain()
        finally:
            writer.close()
