"""The mailbox commands an administrator runs, against the real servers."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.crm.secrets import SecretBox
from crmsync.crm.settings import TrackingPreferences
from tests.integration.conftest import Connected, message


def _env(connected: Connected, tmp_path: Path) -> dict[str, str]:
    return {
        "CRMSYNC_DATABASE_URL": connected.store.database_url,
        "CRMSYNC_BLOB_DIR": str(connected.store.blobs.root),
        "CRMSYNC_SECRET_KEY": connected.secret_key,
        "CRMSYNC_DATA_DIR": str(tmp_path),
        "COLUMNS": "200",
    }


def test_test_enable_sync_and_alerts_from_the_command_line(
    connected: Connected, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = _env(connected, tmp_path)
    connected.add_mailbox("ann", preferences=TrackingPreferences(track_scope="all"))
    ann = connected.users["ann"]

    profiles = runner.invoke(app, ["profile", "list"], env=env)
    assert profiles.exit_code == 0
    assert "Dovecot" in profiles.output

    checked = runner.invoke(app, ["mailbox", "test", ann.address], env=env)
    assert checked.exit_code == 0, checked.output
    assert "1 passed, 0 failed" in checked.output

    connected.deliver(["ann"], message(subject="via the cli"))
    synced = runner.invoke(app, ["sync", "once", "--mailbox", ann.address], env=env)
    assert synced.exit_code == 0, synced.output
    assert "ok" in synced.output

    wrong = runner.invoke(
        app,
        ["mailbox", "set", ann.address, "--password", "definitely-wrong"],
        env=env,
    )
    assert wrong.exit_code == 0, wrong.output
    failing = runner.invoke(app, ["mailbox", "test", ann.address], env=env)
    assert failing.exit_code == 1
    assert "AUTH_FAILED" in failing.output
    assert "definitely-wrong" not in failing.output
    alerts = runner.invoke(app, ["alerts", "--mailbox", ann.address], env=env)
    assert alerts.exit_code == 0
    assert "AUTH_FAILED" in alerts.output

    listing = runner.invoke(app, ["mailbox", "list"], env=env)
    assert "approved" in listing.output
    rejected = runner.invoke(app, ["mailbox", "reject", ann.address], env=env)
    assert rejected.exit_code == 0
    pending = runner.invoke(app, ["mailbox", "list", "--approval", "rejected"], env=env)
    assert ann.address in pending.output


def test_secrets_rotate_keeps_credentials_usable(connected: Connected, tmp_path: Path) -> None:
    runner = CliRunner()
    connected.add_mailbox("ann")
    new_key = SecretBox.generate_key()
    env = {**_env(connected, tmp_path), "CRMSYNC_SECRET_KEY": f"{new_key},{connected.secret_key}"}
    rotated = runner.invoke(app, ["secrets", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output
    only_new = {**env, "CRMSYNC_SECRET_KEY": new_key}
    checked = runner.invoke(app, ["mailbox", "test", connected.users["ann"].address], env=only_new)
    assert checked.exit_code == 0, checked.output
