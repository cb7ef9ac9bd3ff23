"""TaskFlow's command line and composition root (``taskflow.cli``), and where its examples live."""

from __future__ import annotations

from pathlib import Path

# The example DAGs: the checkout's dags/ folder, which the wheel installs beside this package.
EXAMPLES = Path(__file__).resolve().parents[1] / "dags"
