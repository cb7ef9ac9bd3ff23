"""The service's log: readable text by default, or one JSON object a line for log collectors.

``TASKFLOW_LOG_FORMAT=json`` writes ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
``run_id`` and ``task_id`` when the line is about one (passed as ``extra``), and ``exception`` with
the traceback's text when there is one.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_formatter() -> logging.Formatter:
    """A formatter of one JSON object a line (non-ASCII text kept as it is)."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        timestamp="time",
        rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
        json_ensure_ascii=False,
    )


def setup_logging(level: int, fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
