"""crmsync's log lines on the console, for an operator to read or a collector to parse.

Long-running commands (``crmsync serve``, ``sync once``, ``send once``) route the
``crmsync`` loggers — and, under ``serve``, uvicorn's — to one handler on stderr, at
``log_level`` (``CRMSYNC_LOG_LEVEL``), in ``log_format`` (``CRMSYNC_LOG_FORMAT``):

    human  2026-12-06 17:40:12 INFO crmsync.sync.incoming grace@acme.test INBOX: 4 fetched, …
    json   {"time": "2026-12-06T17:40:12.311Z", "level": "INFO",
            "logger": "crmsync.sync.incoming", "message": "grace@acme.test INBOX: …",
            "event": "incoming_pass", "fetched": 4, …}

A JSON line carries, besides time, level, logger and message, every field the caller
passed with ``extra=`` (the engines name their lines with an ``event`` field), and the
traceback as ``exc_info`` when there is one.

Must never write a credential or a message's content. The engines log only counts, ids,
codes, the mailbox's address and folder; as a second line of defence, ``Redact`` masks
what looks like a password, token or key in a line (``password=…``, ``Bearer …``, a URL's
``user:password@``) and any ``extra`` field named like one. It cannot recognise a secret
that does not say what it is: the first line of defence is not logging one.

Nothing here runs at import; ``configure_logging`` changes the ``crmsync`` logger only
(never the root logger), so an application that embeds crmsync keeps its own set-up.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crmsync.config import LogFormat, Settings

ROOT = "crmsync"
UVICORN = ("uvicorn", "uvicorn.access")
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
HUMAN_DATES = "%Y-%m-%d %H:%M:%S"
MASK = "***"
TRACE = 5  # uvicorn's level below DEBUG, accepted by log_level

# What every LogRecord has; the rest of its __dict__ came from ``extra=``. uvicorn adds
# ``color_message`` (its message with terminal colour codes) to some lines: not a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
_SECRET_NAME = re.compile(
    r"password|passwd|pwd|secret|token|api[_-]?key|authori[sz]ation|credential|cookie",
    re.IGNORECASE,
)
_SECRET_PATTERNS = (
    # password=hunter2, "token": "abc", client_secret: xyz, ?access_token=abc&…
    re.compile(
        r"(?P<name>\b[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key)[\w-]*"
        r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+",
        re.IGNORECASE,
    ),
    # Authorization: Basic dXNlcjpwYXNz (the scheme kept, what follows masked)
    re.compile(
        r"(?P<name>\bauthori[sz]ation[\"']?\s*[=:]\s*[\"']?"
        r"(?:(?:basic|bearer|negotiate|ntlm)\s+)?)[^\s\"',;]+",
        re.IGNORECASE,
    ),
    # Bearer eyJhbGciOi… (a word with a digit in it: "bearer tokens" is prose)
    re.compile(r"(?P<name>\bbearer\s+)(?=[^\s]*\d)[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
    # scheme://user:password@host
    re.compile(r"(?P<name>://[^/\s:@]+:)[^/\s@]+(?=@)"),
)


def redact(text: str) -> str:
    """``'login failed: password=hunter2'`` → ``'login failed: password=***'``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group("name") + MASK, text)
    return text


class Redact(logging.Filter):
    """Masks what looks like a secret in a record's message and ``extra`` fields.

    The record itself is changed, so handlers after this one (a test's capture, a root
    handler an embedding application set) see the masked line too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it as logging does
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        for name, value in _extras(record).items():
            if _SECRET_NAME.search(name) and value is not None:
                setattr(record, name, MASK)
            elif isinstance(value, str):
                setattr(record, name, redact(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class UvicornName(logging.Filter):
    """uvicorn logs its server's life ("Started server process") as ``uvicorn.error``;
    shown as ``uvicorn``, so that no operator reads an error into an INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error":
            record.name = "uvicorn"
        return True


class HumanFormatter(logging.Formatter):
    """``2026-12-06 17:40:12 INFO crmsync.sync.incoming <message>``, local time."""

    def __init__(self) -> None:
        super().__init__(HUMAN_FORMAT, HUMAN_DATES)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in _extras(record).items():
            line.setdefault(name, value)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        # default=str: ids (UUID), times and enums are written as their text.
        return json.dumps(line, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the line, so that a progress
    bar (Rich redirects stderr while it draws) and a test's capture both receive it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        # StreamHandler.__init__ assigns it; the property always answers sys.stderr.
        pass


def level_of(settings: Settings) -> int:
    """``'INFO'`` → ``logging.INFO``; the setting is checked when it is read (config.py)."""
    level = settings.log_level.strip().upper()
    return TRACE if level == "TRACE" else logging.getLevelNamesMapping()[level]


def handler_for(log_format: LogFormat | str) -> logging.Handler:
    """The one handler: stderr, the chosen format, secrets masked."""
    handler = StderrHandler()
    json_lines = LogFormat(log_format) is LogFormat.JSON
    handler.setFormatter(JsonFormatter() if json_lines else HumanFormatter())
    handler.addFilter(Redact())
    handler.addFilter(UvicornName())
    return handler


def configure_logging(settings: Settings) -> logging.Handler:
    """Send the ``crmsync`` loggers' lines at ``log_level`` and above to stderr.

    Idempotent: a handler an earlier call installed is replaced, not doubled. The lines
    still propagate, so a handler on the root logger (pytest's capture, an embedding
    application's) sees them too; by default the root logger has none.
    """
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
        logger.removeHandler(old)
    handler = handler_for(settings.log_format)
    logger.addHandler(handler)
    logger.setLevel(level_of(settings))
    return handler


@contextmanager
def logging_configured(settings: Settings) -> Iterator[None]:
    """``configure_logging`` for the length of a command, then the logger as it was: a
    command run in-process (by a test, by a script) leaves no handler behind."""
    logger = logging.getLogger(ROOT)
    level, handlers = logger.level, list(logger.handlers)
    configure_logging(settings)
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=…)``: crmsync's
    loggers and uvicorn's (its access log included) share the one handler and format.

    ``disable_existing_loggers`` is False: the engines' module loggers exist already.
    """
    level = level_of(settings)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"crmsync": {"()": handler_for, "log_format": str(settings.log_format)}},
        "loggers": {
            ROOT: {"handlers": ["crmsync"], "level": level},
            # uvicorn.error propagates to uvicorn; access lines stop at their own logger.
            **{
                name: {"handlers": ["crmsync"], "level": level, "propagate": False}
                for name in UVICORN
            },
            "uvicorn.error": {"level": level},
        },
    }


__all__ = [
    "HumanFormatter",
    "JsonFormatter",
    "Redact",
    "StderrHandler",
    "UvicornName",
    "configure_logging",
    "handler_for",
    "level_of",
    "logging_configured",
    "redact",
    "uvicorn_log_config",
]
