"""Secrets: looked up by name when an attempt starts, held in memory only, masked wherever echoed.

A secret ``NAME`` is the environment variable ``TASKFLOW_SECRET_NAME`` (or that line of ``.env``),
else the file ``<TASKFLOW_SECRETS_DIR>/NAME`` (the convention of Docker and Kubernetes secrets).
Both are read at each lookup, so a rotated secret is used from the next attempt on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

ENV_PREFIX = "TASKFLOW_SECRET_"
MAX_SECRET_BYTES = 64 * 1024
MASK = "***"


class Secrets:
    """Where secrets come from (injected into the orchestrator)."""

    def __init__(
        self,
        secrets_dir: Path | None = None,
        *,
        env_file: Path | None = Path(".env"),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.secrets_dir = secrets_dir
        self._env_file = env_file
        self._environ = os.environ if environ is None else environ
        self._dotenv: tuple[tuple[int, int], dict[str, str | None]] | None = None  # (mtime, size), its values

    def get(self, name: str) -> str | None:
        """The secret's value, or None if it is not set anywhere."""
        key = ENV_PREFIX + name
        value = self._environ.get(key)
        if value is None:
            value = self._from_dotenv(key)
        if value is None and self.secrets_dir is not None:
            value = _read_file(self.secrets_dir / name)
        return value

    def _from_dotenv(self, key: str) -> str | None:
        """A line of ``.env``, read again only when the file changes."""
        if self._env_file is None:
            return None
        try:
            stat = self._env_file.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._dotenv is None or self._dotenv[0] != stamp:
            self._dotenv = (stamp, dotenv_values(self._env_file))
        return self._dotenv[1].get(key)

    def missing(self, names: Iterable[str]) -> list[str]:
        """The names among ``names`` that are not set."""
        return [name for name in dict.fromkeys(names) if self.get(name) is None]

    def where(self, name: str) -> str:
        """Where to set a secret, for a message."""
        place = f"the environment variable {ENV_PREFIX}{name}"
        if self.secrets_dir is not None:
            place += f" or the file {self.secrets_dir / name}"
        return place


def _read_file(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SECRET_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    if len(data) > MAX_SECRET_BYTES:
        return None
    # Files written by `echo` or an editor end with a newline that is not part of the secret.
    return data.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")


class Masker:
    """Replaces the secret values a run has used with ``***`` in text and in outputs."""

    def __init__(self) -> None:
        self._values: list[str] = []

    def add(self, values: Iterable[str]) -> None:
        """Mask these from now on (empty values mask nothing)."""
        new = [v for v in values if v and v not in self._values]
        if new:
            self._values = sorted([*self._values, *new], key=len, reverse=True)  # longest first

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A JSON value with every string (and key) masked."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


class MaskFilter(logging.Filter):
    """Masks secret values in the records of a run's logger (the message and any traceback)."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.masker:
            return True
        message = record.getMessage()
        masked = self.masker.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.masker.text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.masker.text(record.exc_text)
        return True
