"""Settings from the environment or a ``.env`` file, read once and injected."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from operations.destinations import DestinationPolicy
from orchestrator.limits import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_STORED_OUTPUT_BYTES,
    DEFAULT_MAX_TASKS,
    max_config_bytes,
)

# The webhook's route lives here: outside /api (the secret header guards it, not the API token).
WEBHOOK_PREFIX = "/telegram/"
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _env(name: str) -> AliasChoices:
    # Settings may also be passed by field name in code (Settings(data_dir=...)).
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Every setting TaskFlow reads; see the README for each variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    telegram_bot_token: str | None = Field(default=None, validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_api_base: str = Field(default="https://api.telegram.org", validation_alias=_env("TELEGRAM_API_BASE"))
    telegram_allowed_users: str = Field(default="", validation_alias=_env("TELEGRAM_ALLOWED_USERS"))
    telegram_webhook_url: str | None = Field(default=None, validation_alias=_env("TELEGRAM_WEBHOOK_URL"))
    telegram_webhook_secret: str | None = Field(default=None, validation_alias=_env("TELEGRAM_WEBHOOK_SECRET"))
    host: str = Field(default="127.0.0.1", validation_alias=_env("TASKFLOW_HOST"))
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=5000, validation_alias=_env("TASKFLOW_PORT"))
    public_url_setting: str | None = Field(default=None, validation_alias=_env("TASKFLOW_PUBLIC_URL"))
    data_dir: Path = Field(default=Path("."), validation_alias=_env("TASKFLOW_DATA_DIR"))
    db_setting: Path | None = Field(default=None, validation_alias=_env("TASKFLOW_DB"))
    dags_dir_setting: Path | None = Field(default=None, validation_alias=_env("TASKFLOW_DAGS_DIR"))
    api_token: str | None = Field(default=None, validation_alias=_env("TASKFLOW_API_TOKEN"))
    workers: int = Field(default=16, ge=1, le=1024, validation_alias=_env("TASKFLOW_WORKERS"))
    allow_shell: bool = Field(default=False, validation_alias=_env("TASKFLOW_ALLOW_SHELL"))
    timezone: str = Field(default="UTC", validation_alias=_env("TASKFLOW_TIMEZONE"))
    executor: str = Field(default="local", validation_alias=_env("TASKFLOW_EXECUTOR"))
    dask_address: str | None = Field(default=None, validation_alias=_env("TASKFLOW_DASK_ADDRESS"))
    secrets_dir: Path | None = Field(default=None, validation_alias=_env("TASKFLOW_SECRETS_DIR"))
    keep_days: float | None = Field(default=None, gt=0, validation_alias=_env("TASKFLOW_KEEP_DAYS"))
    keep_runs: int | None = Field(default=None, ge=1, validation_alias=_env("TASKFLOW_KEEP_RUNS"))
    zip_only: bool = Field(default=False, validation_alias=_env("TASKFLOW_ZIP_ONLY"))
    log_format: Literal["text", "json"] = Field(default="text", validation_alias=_env("TASKFLOW_LOG_FORMAT"))
    max_tasks: int = Field(default=DEFAULT_MAX_TASKS, ge=1, le=10_000_000, validation_alias=_env("TASKFLOW_MAX_TASKS"))
    max_output_bytes: int = Field(
        default=DEFAULT_MAX_OUTPUT_BYTES, ge=1024, validation_alias=_env("TASKFLOW_MAX_OUTPUT_BYTES")
    )
    max_stored_output_bytes: int = Field(
        default=DEFAULT_MAX_STORED_OUTPUT_BYTES, ge=0, validation_alias=_env("TASKFLOW_MAX_STORED_OUTPUT_BYTES")
    )
    # Where http_request may go: hosts and networks (empty: anywhere), and whether internal addresses are refused.
    http_allowed_hosts: str = Field(default="", validation_alias=_env("TASKFLOW_HTTP_ALLOWED_HOSTS"))
    http_block_private: bool = Field(default=False, validation_alias=_env("TASKFLOW_HTTP_BLOCK_PRIVATE"))
    # Slow or idle clients: seconds for a whole request header, bytes a second of body, connections at once.
    header_timeout: float = Field(default=10.0, gt=0, le=3600, validation_alias=_env("TASKFLOW_HEADER_TIMEOUT"))
    min_body_rate: float = Field(default=4096.0, ge=0, validation_alias=_env("TASKFLOW_MIN_BODY_RATE"))
    max_connections: int = Field(default=512, ge=1, le=1_000_000, validation_alias=_env("TASKFLOW_MAX_CONNECTIONS"))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_path(cls, value: str | None) -> str | None:
        if value and not urlsplit(value).path.startswith(WEBHOOK_PREFIX):
            raise ValueError(
                f"the webhook URL's path must start with {WEBHOOK_PREFIX} (e.g. https://example.org/telegram/webhook)"
            )
        return value or None

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_token(cls, value: str | None) -> str | None:
        if value and not _SECRET_TOKEN.fullmatch(value):
            raise ValueError("the webhook secret is 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value or None

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.telegram_webhook_url and not self.telegram_webhook_secret:
            raise ValueError("TELEGRAM_WEBHOOK_URL needs TELEGRAM_WEBHOOK_SECRET: the secret is what guards the route")
        return self

    @property
    def webhook_path(self) -> str | None:
        """Where the web server takes the bot's updates in webhook mode (the path of ``TELEGRAM_WEBHOOK_URL``)."""
        return urlsplit(self.telegram_webhook_url).path if self.telegram_webhook_url else None

    @field_validator("http_allowed_hosts")
    @classmethod
    def _known_destinations(cls, value: str) -> str:
        DestinationPolicy.parse(value)  # a ValueError naming the entry that is wrong
        return value

    @property
    def destinations(self) -> DestinationPolicy:
        """Where ``http_request`` may go."""
        return DestinationPolicy.parse(self.http_allowed_hosts, block_private=self.http_block_private)

    @property
    def public_url(self) -> str:
        """Base of the links handed out (no trailing slash)."""
        return (self.public_url_setting or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def max_config_bytes(self) -> int:
        """The size a DAG config may have (it follows ``max_tasks``)."""
        return max_config_bytes(self.max_tasks)

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.db_setting or self.data_dir / "taskflow.db"

    @property
    def runs_dir(self) -> Path:
        """Where run folders and archives live (``dag/``)."""
        return self.data_dir / "dag"

    @property
    def configs_dir(self) -> Path:
        """Saved configs, one folder per dag_id."""
        return self.data_dir / "configs"

    @property
    def dags_dir(self) -> Path:
        """DAG definitions loaded and watched at start."""
        return self.dags_dir_setting or self.data_dir / "dags"

    @property
    def tz(self) -> ZoneInfo:
        """The timezone cron schedules are read in."""
        return ZoneInfo(self.timezone)

    @property
    def allowed_users(self) -> tuple[set[int], set[str]]:
        """The allow-list as (user ids, lower-cased usernames without '@')."""
        ids: set[int] = set()
        names: set[str] = set()
        for item in self.telegram_allowed_users.replace(";", ",").split(","):
            item = item.strip()
            if item.lstrip("-").isdigit():
                ids.add(int(item))
            elif item:
                names.add(item.lstrip("@").lower())
        return ids, names
