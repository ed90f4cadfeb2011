"""The crmsync command as an administrator uses it: messages and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.core.types import Channel, ChannelStatus
from crmsync.crm.auth import authenticate_token
from crmsync.crm.models import Mailbox, User
from crmsync.crm.store import Store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"CRMSYNC_DATA_DIR": str(tmp_path / "data"), "CRMSYNC_ADMIN_PASSWORD": "s3cret-pass"}


def test_init_is_idempotent_and_user_and_token_follow(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(
        app, ["init", "--organisation", "Acme", "--admin-email", "a@acme.test"], env=env
    )
    assert first.exit_code == 0, first.output
    assert "Created organisation Acme" in first.output
    assert "s3cret-pass" not in first.output
    again = runner.invoke(app, ["init", "--organisation", "Acme"], env=env)
    assert again.exit_code == 0
    assert "exists" in again.output

    added = runner.invoke(
        app,
        ["user", "add", "bob", "--email", "bob@acme.test", "--role", "Salesperson"],
        env={**env, "CRMSYNC_USER_PASSWORD": "bob-password"},
    )
    assert added.exit_code == 0, added.output
    duplicate = runner.invoke(app, ["user", "add", "bob"], env=env)
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.output
    unknown_role = runner.invoke(app, ["user", "add", "eve", "--role", "Wizard"], env=env)
    assert unknown_role.exit_code == 1
    assert "Wizard" in unknown_role.output

    token = runner.invoke(app, ["token", "create", "bob"], env=env)
    assert token.exit_code == 0, token.output
    clear = token.output.strip().splitlines()[-1]
    store = Store(f"sqlite:///{tmp_path / 'data' / 'crmsync.sqlite3'}", tmp_path / "blobs")
    with store.transaction() as session:
        assert authenticate_token(session, clear).username == "bob"
    store.dispose()
    nobody = runner.invoke(app, ["token", "create", "nobody"], env=env)
    assert nobody.exit_code == 1


def test_commands_refuse_an_uninitialised_database(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["user", "add", "bob"], env=env)
    assert result.exit_code == 1
    assert "crmsync init" in result.output


def test_wrong_usage_exits_2(env: dict[str, str]) -> None:
    assert CliRunner().invoke(app, ["user", "add"], env=env).exit_code == 2


def test_the_operator_can_always_add_an_administrator(env: dict[str, str], tmp_path: Path) -> None:
    """The recovery path: with every administrator gone, the host's operator adds one."""
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--organisation", "Acme"], env=env).exit_code == 0
    with_password = {**env, "CRMSYNC_USER_PASSWORD": "bob-password"}
    bob = runner.invoke(app, ["user", "add", "bob", "--role", "Salesperson"], env=with_password)
    assert bob.exit_code == 0, bob.output
    store = Store(f"sqlite:///{tmp_path / 'data' / 'crmsync.sqlite3'}", tmp_path / "blobs")
    with store.transaction() as session:
        session.execute(update(User).where(User.username == "admin").values(is_active=False))
    store.dispose()

    as_bob = runner.invoke(
        app, ["user", "add", "eve", "--role", "System Administrator", "--as", "bob"], env=env
    )
    assert as_bob.exit_code == 1
    assert "privilege" in as_bob.output
    rescue = runner.invoke(
        app,
        ["user", "add", "rescue", "--role", "System Administrator"],
        env={**env, "CRMSYNC_USER_PASSWORD": "rescue-password"},
    )
    assert rescue.exit_code == 0, rescue.output
    token = runner.invoke(app, ["token", "create", "rescue"], env=env)
    assert token.exit_code == 0, token.output


def _table(output: str) -> list[dict[str, str]]:
    """The rows of the Rich table in ``output`` as {heading: cell} (cells on one line)."""
    lines = output.splitlines()
    header = next(line for line in lines if "┃" in line)
    headings = [cell.strip() for cell in header.strip().strip("┃").split("┃")]
    rows = [line.strip().strip("│").split("│") for line in lines if line.count("│") > 1]
    return [dict(zip(headings, (cell.strip() for cell in row), strict=True)) for row in rows]


def test_mailbox_list_shows_each_channel_under_its_heading(
    env: dict[str, str], tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--organisation", "Acme"], env=env).exit_code == 0
    added = runner.invoke(
        app,
        ["user", "add", "ann", "--email", "ann@acme.test"],
        env={**env, "CRMSYNC_USER_PASSWORD": "ann-password"},
    )
    assert added.exit_code == 0, added.output
    # Three different states, so a cell under the wrong heading cannot pass unnoticed.
    states = {
        Channel.INCOMING: (True, ChannelStatus.SUCCESS, None),
        Channel.OUTGOING: (False, ChannelStatus.FAILURE, "AUTH_FAILED"),
        Channel.ACT: (False, ChannelStatus.NOT_RUN, None),
    }
    store = Store(f"sqlite:///{tmp_path / 'data' / 'crmsync.sqlite3'}", tmp_path / "blobs")
    with store.transaction() as session:
        mailbox = session.scalars(
            select(Mailbox).where(Mailbox.email_address == "ann@acme.test")
        ).one()
        for channel in mailbox.channels:
            channel.enabled, channel.status, channel.last_error_code = states[channel.channel]
    store.dispose()

    listing = runner.invoke(app, ["mailbox", "list"], env={**env, "COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    (ann,) = [row for row in _table(listing.output) if row["address"] == "ann@acme.test"]
    assert ann["incoming"] == "on success"
    assert ann["outgoing"] == "off failure AUTH_FAILED"
    assert ann["act"] == "off not_run"


def test_mailboxes_and_profiles_are_found_by_name_id_or_address_and_never_guessed(
    env: dict[str, str], tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--organisation", "Acme"], env=env).exit_code == 0
    for username in ("sam1", "sam2"):
        added = runner.invoke(
            app,
            ["user", "add", username, "--full-name", "Sam Lee", "--email", f"{username}@acme.test"],
            env={**env, "CRMSYNC_USER_PASSWORD": "sam-password"},
        )
        assert added.exit_code == 0, added.output
    profile = runner.invoke(
        app,
        [
            "profile",
            "add",
            "Mail",
            "--incoming-host",
            "mx.acme.test",
            "--outgoing-host",
            "mx.acme.test",
        ],
        env=env,
    )
    assert profile.exit_code == 0, profile.output
    profile_id = profile.output.rsplit("(", 1)[1].split(")")[0]

    both = runner.invoke(app, ["mailbox", "set", "Sam Lee", "--profile", "Mail"], env=env)
    assert both.exit_code == 1
    assert "names 2 of them" in both.output
    by_id = runner.invoke(
        app, ["mailbox", "set", "sam2@acme.test", "--profile", profile_id], env=env
    )
    assert by_id.exit_code == 0, by_id.output
    unknown = runner.invoke(app, ["mailbox", "set", "sam2@acme.test", "--profile", "Nope"], env=env)
    assert unknown.exit_code == 1
    assert "no profile 'Nope'" in unknown.output

    listing = runner.invoke(app, ["mailbox", "list"], env={**env, "COLUMNS": "200"})
    profiles = {row["address"]: row["profile"] for row in _table(listing.output)}
    assert profiles["sam2@acme.test"] == "Mail"
    assert profiles["sam1@acme.test"] == ""
