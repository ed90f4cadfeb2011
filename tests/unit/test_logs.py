"""What an operator sees on the console: crmsync's lines at the configured level, in the
human or the JSON format, with nothing that looks like a secret."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from crmsync.config import LogFormat, Settings
from crmsync.logs import ROOT, configure_logging, logging_configured

ENGINE = "crmsync.sync.incoming"


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    """Each test configures the crmsync logger; later tests find it as it was."""
    logger = logging.getLogger(ROOT)
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_the_level_comes_from_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_level="warning"))
    assert logging.getLogger(ROOT).level == logging.WARNING
    engine = logging.getLogger(ENGINE)
    engine.info("a pass went well")
    engine.warning("a pass failed")
    assert [line.split(" ", 3)[-1] for line in _lines(capsys)] == [f"{ENGINE} a pass failed"]

    configure_logging(Settings(log_level="DEBUG"))
    engine.debug("details")
    assert len(_lines(capsys)) == 1  # replaced, not a second handler writing it twice


def test_an_unknown_level_is_refused_when_the_settings_are_read() -> None:
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level="loud")


def test_the_human_format_is_time_level_logger_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(Settings())
    logging.getLogger(ENGINE).info(
        "%s %s: %d fetched", "grace@acme.test", "INBOX", 4, extra={"fetched": 4}
    )
    (line,) = _lines(capsys)
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d INFO {ENGINE} grace@acme.test INBOX: 4 fetched",
        line,
    ), line


def test_json_lines_carry_the_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format=LogFormat.JSON))
    mailbox_id = uuid.uuid4()
    engine = logging.getLogger(ENGINE)
    engine.info(
        "%s: %d tracked",
        "grace@acme.test",
        3,
        extra={"event": "incoming_pass", "mailbox_id": mailbox_id, "tracked": 3, "error": None},
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        engine.exception("a pass broke")
    first, second = (json.loads(line) for line in _lines(capsys))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("time"))
    assert first == {
        "level": "INFO",
        "logger": ENGINE,
        "message": "grace@acme.test: 3 tracked",
        "event": "incoming_pass",
        "mailbox_id": str(mailbox_id),
        "tracked": 3,
        "error": None,
    }
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in second["exc_info"]


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_what_looks_like_a_secret_is_masked(
    capsys: pytest.CaptureFixture[str], log_format: LogFormat
) -> None:
    configure_logging(Settings(log_format=log_format))
    engine = logging.getLogger(ENGINE)
    engine.warning("login refused: password=%s", "hunter2-pw")
    engine.warning("GET /api?access_token=tok-123&page=2 with Authorization: Basic dXNlcjpwYXNz")
    engine.warning("connecting to postgresql://crm:db-pass-9@db/crm")
    engine.warning("renewal failed", extra={"refresh_token": "rt-456", "detail": "Bearer ab12cd"})
    engine.warning("the server offers basic authentication; bearer tokens unsupported")
    output = "\n".join(_lines(capsys))
    for secret in ("hunter2-pw", "tok-123", "dXNlcjpwYXNz", "db-pass-9", "rt-456", "ab12cd"):
        assert secret not in output
    assert "password=***" in output
    assert "page=2" in output
    assert "postgresql://crm:***@db/crm" in output
    # Prose that merely names a scheme is left alone.
    assert "offers basic authentication; bearer tokens unsupported" in output


def test_a_command_leaves_the_logger_as_it_found_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = logging.getLogger(ROOT)
    before = (logger.level, list(logger.handlers))
    with logging_configured(Settings(log_level="ERROR")):
        assert logger.level == logging.ERROR
        logging.getLogger(ENGINE).error("inside")
    assert (logger.level, list(logger.handlers)) == before
    assert len(_lines(capsys)) == 1


def test_under_serve_uvicorns_access_log_and_crmsyncs_lines_share_the_format() -> None:
    # In a process of its own: dictConfig replaces every handler of the process.
    script = textwrap.dedent(
        """
        import logging, logging.config
        from crmsync.config import Settings
        from crmsync.logs import uvicorn_log_config
        import crmsync.sync.incoming  # its logger exists before the configuration
        logging.config.dictConfig(uvicorn_log_config(Settings(log_format="json")))
        logging.getLogger("crmsync.sync.incoming").info("a pass", extra={"tracked": 2})
        logging.getLogger("crmsync.sync.incoming").debug("below the level")
        logging.getLogger("uvicorn.error").info(
            "Uvicorn running", extra={"color_message": "\x1b[1mUvicorn\x1b[0m running"}
        )
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/x?token=t0k3n", "1.1", 200
        )
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("crmsync.sync.incoming", "a pass"),
        ("uvicorn", "Uvicorn running"),
        ("uvicorn.access", '127.0.0.1:5000 - "GET /x?token=*** HTTP/1.1" 200'),
    ]
    assert lines[0]["tracked"] == 2
    assert "color_message" not in lines[1]  # uvicorn's copy with terminal colours
