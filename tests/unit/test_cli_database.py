"""Which database a command opens: named when it is missing, never created by looking."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmsync.cli import app, common

# Settings the developer's shell may carry; each test says what it wants instead.
_SETTINGS = ("CRMSYNC_DATA_DIR", "CRMSYNC_DATABASE_URL", "CRMSYNC_BLOB_DIR", "CRMSYNC_CONFIG")


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return workdir


def test_a_command_in_an_empty_directory_names_the_database_and_creates_nothing(
    empty_dir: Path,
) -> None:
    result = CliRunner().invoke(app, ["mailbox", "list"])
    assert result.exit_code == 1
    expected = empty_dir / "crmsync-data" / "crmsync.sqlite3"
    assert f"no crmsync database at {expected} — run `crmsync init`" in result.output
    assert "CRMSYNC_DATA_DIR" in result.output
    assert "crmsync init" in result.output
    assert list(empty_dir.iterdir()) == []


def test_the_message_names_the_demo_when_there_is_one(
    empty_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = tmp_path / "repo" / "var" / "demo"
    monkeypatch.setattr(common, "demo_data_dir", lambda: demo)
    result = CliRunner().invoke(app, ["mailbox", "list"])
    assert result.exit_code == 1
    assert f"point CRMSYNC_DATA_DIR at an existing instance (the demo's is {demo})" in (
        result.output
    )


def test_an_empty_database_file_is_named_as_not_initialised(empty_dir: Path) -> None:
    data_dir = empty_dir / "data"
    data_dir.mkdir()
    (data_dir / "crmsync.sqlite3").touch()
    result = CliRunner().invoke(
        app, ["profile", "list"], env={"CRMSYNC_DATA_DIR": str(data_dir), "COLUMNS": "300"}
    )
    assert result.exit_code == 1
    assert f"{data_dir / 'crmsync.sqlite3'} is not initialised" in result.output
    assert sorted(p.name for p in data_dir.iterdir()) == ["crmsync.sqlite3"]


def test_a_database_url_is_named_without_its_password(empty_dir: Path) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    url = "postgresql+psycopg://crm:hunter2@127.0.0.1:1/crm?connect_timeout=2"
    result = CliRunner().invoke(
        app, ["mailbox", "list"], env={"CRMSYNC_DATABASE_URL": url, "COLUMNS": "300"}
    )
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "postgresql+psycopg://crm:***@127.0.0.1:1/crm" in result.output
    assert "CRMSYNC_DATABASE_URL" in result.output
    assert list(empty_dir.iterdir()) == []


def test_init_still_creates_the_database(empty_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["init", "--organisation", "Acme"], env={"CRMSYNC_ADMIN_PASSWORD": "s3cret-pass"}
    )
    assert result.exit_code == 0, result.output
    assert (empty_dir / "crmsync-data" / "crmsync.sqlite3").is_file()
    listing = CliRunner().invoke(app, ["mailbox", "list"])
    assert listing.exit_code == 0, listing.output
