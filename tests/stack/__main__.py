"""``python -m tests.stack``: run the whole stack against the emulator (``make airflow``)."""

from __future__ import annotations

import sys

from tests.stack.airflow_stack import main

if __name__ == "__main__":
    sys.exit(main())
