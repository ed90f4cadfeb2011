"""The one typed settings object.

Settings come from, in rising priority: defaults, an optional ``crmsync.toml`` in the
working directory (or the file named by ``CRMSYNC_CONFIG``), and ``CRMSYNC_*``
environment variables. They are read once, by ``load_settings()``, at the outermost layer
(CLI, application factory) and passed in; nothing reads the environment at import time.

Never log a ``Settings`` object whole: ``secret_key`` lives here.
"""

from __future__ import annotations

import enum
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# TRACE is uvicorn's, below DEBUG.
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogFormat(enum.StrEnum):
    HUMAN = "human"  # 2026-12-06 17:40:12 INFO crmsync.sync.incoming …
    JSON = "json"  # one JSON object per line (crmsync.logs)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRMSYNC_", extra="ignore")

    data_dir: Path = Field(
        default=Path("crmsync-data"),
        description="Where the SQLite database and the blob store live by default.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; a SQLite file under data_dir when unset.",
    )
    blob_dir: Path | None = Field(
        default=None, description="Content-addressed file store; data_dir/blobs when unset."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for credentials at rest; data_dir/secret.key is made when unset.",
    )
    host: str = "127.0.0.1"
    port: int = 8025
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one is refused (413) unread.",
    )
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        description="The same for routes that take file uploads (api.limits.upload_route).",
    )
    public_url: str | None = Field(
        default=None,
        description="The https:// address people reach this instance at, when a proxy "
        "stands in front of it: the Outlook add-in manifest names it.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) besides the server's own whose pages "
        "may send requests authenticated by the session cookie, e.g. the public address "
        "when a proxy terminates TLS. In the environment, a JSON list.",
    )
    log_level: str = "INFO"
    log_format: LogFormat = Field(
        default=LogFormat.HUMAN,
        description="How crmsync writes its log lines on stderr: 'human' (time, level, "
        "logger, message) or 'json' (one JSON object per line, with the line's fields).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Prometheus scrapes /metrics with 'Authorization: Bearer <this>'. "
        "With neither this nor metrics_allow set, /metrics is off (404).",
    )
    metrics_allow: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Client addresses (CIDRs, e.g. 127.0.0.1/32 or 10.0.0.0/8) that may "
        "read /metrics without the token. The address is the connection's: behind a proxy, "
        "the proxy's. In the environment, a JSON list.",
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        return level

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'crmsync.sqlite3').resolve()}"

    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"


def _toml_values(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    section = raw.get("crmsync", raw)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: expected a [crmsync] table")
    return section


def load_settings(**overrides: Any) -> Settings:
    """Build the settings: defaults < crmsync.toml < environment < explicit overrides."""
    config_file = Path(os.environ.get("CRMSYNC_CONFIG", "crmsync.toml"))
    file_values = _toml_values(config_file) if config_file.is_file() else {}
    env_settings = Settings()
    # Values set in the environment win over the file; the file wins over defaults.
    merged = {**file_values, **env_settings.model_dump(exclude_unset=True), **overrides}
    return Settings.model_validate(merged)
