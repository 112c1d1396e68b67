"""Waiting in a test for something another thread or process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """
    Return once ``condition()`` holds; ``timeout`` only decides how long a failure takes to show.

    The condition is an event the test needs to see, never a measure of speed.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
