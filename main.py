"""TaskFlow from a checkout: ``python main.py`` is the ``taskflow`` command (``taskflow/cli.py``)."""

import sys

try:
    from taskflow.cli import main
except ModuleNotFoundError as missing:  # started by a Python without TaskFlow's packages (outside .venv)
    if (missing.name or "").partition(".")[0] in {"taskflow", "orchestrator", "operations", "web", "bot"}:
        raise
    sys.exit(f"{missing.name} is not installed for {sys.executable}: run `make run`, or `.venv/bin/python main.py ...`")

if __name__ == "__main__":
    sys.exit(main())
