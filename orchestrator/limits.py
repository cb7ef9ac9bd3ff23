"""Every limit TaskFlow enforces, defined once (those of the plug-in interface in ``operations``)."""

from __future__ import annotations

from operations.base import DEFAULT_MAX_OUTPUT_BYTES as DEFAULT_MAX_OUTPUT_BYTES
from operations.filenames import MAX_FILENAME_LENGTH as MAX_FILENAME_LENGTH
from operations.filenames import RESERVED_FILENAMES as RESERVED_FILENAMES

# Tasks a DAG may have: the TASKFLOW_MAX_TASKS setting's default. A config may take this many bytes
# a task (a generous task, description and params included), and never less than 2 MiB in all.
DEFAULT_MAX_TASKS = 100_000
CONFIG_BYTES_PER_TASK = 200


def max_config_bytes(max_tasks: int) -> int:
    """The size a config may have when a DAG may have ``max_tasks`` tasks."""
    return max(2 * 1024 * 1024, max_tasks * CONFIG_BYTES_PER_TASK)


MAX_CONFIG_BYTES = max_config_bytes(DEFAULT_MAX_TASKS)
MAX_ID_LENGTH = 64
# SQLite's largest integer: no run or schedule can have a larger id.
MAX_ROW_ID = 2**63 - 1
MAX_RETRIES = 100
MAX_RETRY_DELAY_S = 24 * 3600.0
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_XML_BYTES = 5 * 1024 * 1024
# A 4diac project as a ZIP (the system file, its type files, a taskflow-map.json): the upload itself,
# what its members may unpack to in all, how many members it may have, and how many type files are read.
MAX_4DIAC_ZIP_BYTES = 10 * 1024 * 1024
MAX_4DIAC_UNZIPPED_BYTES = 50 * 1024 * 1024
MAX_4DIAC_ZIP_MEMBERS = 1000
MAX_4DIAC_TYPE_FILES = 500
# Blocks, pins and sub-apps an import may build: typed sub-apps nest, so a small ZIP could otherwise expand
# to exponentially many copies of its types.
MAX_4DIAC_NODES = 50_000
MAX_REQUEST_BYTES = MAX_CONFIG_BYTES + 64 * 1024
# What the web server reads of any body at all (the views check their own, smaller limits first).
MAX_HTTP_BODY_BYTES = max(MAX_REQUEST_BYTES, MAX_XML_BYTES, MAX_4DIAC_ZIP_BYTES) + 64 * 1024
# Outputs larger than this (TASKFLOW_MAX_STORED_OUTPUT_BYTES's default, as JSON) stay in their file only;
# SQLite keeps a reference to it.
DEFAULT_MAX_STORED_OUTPUT_BYTES = 1024 * 1024
# How far from the origin a task may be drawn (``position``), either way on each axis.
MAX_POSITION = 1_000_000.0
# How deep JSON input may nest (objects and arrays): deeper values break encoders and the stack.
MAX_JSON_DEPTH = 64
