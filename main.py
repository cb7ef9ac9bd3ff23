"""TaskFlow from a checkout: ``python main.py`` is the ``taskflow`` command (``taskflow/cli.py``)."""

import sys

from taskflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
