"""Every limit TaskFlow enforces, defined once."""

from __future__ import annotations

MAX_CONFIG_BYTES = 2 * 1024 * 1024
MAX_TASKS = 10_000
MAX_ID_LENGTH = 64
# SQLite's largest integer: no run or schedule can have a larger id.
MAX_ROW_ID = 2**63 - 1
MAX_FILENAME_LENGTH = 128
MAX_RETRIES = 100
MAX_RETRY_DELAY_S = 24 * 3600.0
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_XML_BYTES = 5 * 1024 * 1024
MAX_REQUEST_BYTES = MAX_CONFIG_BYTES + 64 * 1024
# What the web server reads of any body at all (the views check their own, smaller limits first).
MAX_HTTP_BODY_BYTES = max(MAX_REQUEST_BYTES, MAX_XML_BYTES) + 64 * 1024
# The largest output an operation may produce (TASKFLOW_MAX_OUTPUT_BYTES's default): its file's size.
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
# Outputs larger than this (TASKFLOW_MAX_STORED_OUTPUT_BYTES's default, as JSON) stay in their file only;
# SQLite keeps a reference to it.
DEFAULT_MAX_STORED_OUTPUT_BYTES = 1024 * 1024
# How far from the origin a task may be drawn (``position``), either way on each axis.
MAX_POSITION = 1_000_000.0
# How deep JSON input may nest (objects and arrays): deeper values break encoders and the stack.
MAX_JSON_DEPTH = 64

# Names the run folder uses for itself; a task's output may not take them.
RESERVED_FILENAMES = frozenset({"config.json", "run.log", "run.json", "manifest.json"})
