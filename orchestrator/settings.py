"""Settings from the environment or a ``.env`` file (SPEC §7), read once and injected."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.limits import DEFAULT_MAX_TASKS, max_config_bytes


def _env(name: str) -> AliasChoices:
    # Settings may also be passed by field name in code (Settings(data_dir=...)).
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Every setting TaskFlow reads; see the README for each variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    telegram_bot_token: str | None = Field(default=None, validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_api_base: str = Field(default="https://api.telegram.org", validation_alias=_env("TELEGRAM_API_BASE"))
    telegram_allowed_users: str = Field(default="", validation_alias=_env("TELEGRAM_ALLOWED_USERS"))
    host: str = Field(default="127.0.0.1", validation_alias=_env("TASKFLOW_HOST"))
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=5000, validation_alias=_env("TASKFLOW_PORT"))
    public_url_setting: str | None = Field(default=None, validation_alias=_env("TASKFLOW_PUBLIC_URL"))
    data_dir: Path = Field(default=Path("."), validation_alias=_env("TASKFLOW_DATA_DIR"))
    db_setting: Path | None = Field(default=None, validation_alias=_env("TASKFLOW_DB"))
    api_token: str | None = Field(default=None, validation_alias=_env("TASKFLOW_API_TOKEN"))
    workers: int = Field(default=16, ge=1, le=1024, validation_alias=_env("TASKFLOW_WORKERS"))
    allow_shell: bool = Field(default=False, validation_alias=_env("TASKFLOW_ALLOW_SHELL"))
    timezone: str = Field(default="UTC", validation_alias=_env("TASKFLOW_TIMEZONE"))
    executor: str = Field(default="local", validation_alias=_env("TASKFLOW_EXECUTOR"))
    dask_address: str | None = Field(default=None, validation_alias=_env("TASKFLOW_DASK_ADDRESS"))
    secrets_dir: Path | None = Field(default=None, validation_alias=_env("TASKFLOW_SECRETS_DIR"))
    max_tasks: int = Field(default=DEFAULT_MAX_TASKS, ge=1, le=10_000_000, validation_alias=_env("TASKFLOW_MAX_TASKS"))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

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
        return self.data_dir / "dags"

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
