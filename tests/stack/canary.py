"""
A canary for a busy machine: a process that only sleeps, and notes each time it woke up late.

Airflow's triggerer warns when its event loop ran nothing for 0.2 s. On an idle machine only code that runs
on that loop can cause it; on a machine whose cores are all taken, the triggerer waits for a core as every
other process does. The canary tells the two apart: a loop blocked by its own code leaves the canary on time,
a machine that is the bottleneck makes the canary late too, at the same moment.

Run ``python -m tests.stack.canary FILE``: it appends ``<epoch> <lateness seconds>`` to FILE for every wake-up
at least :data:`NOTED_LATENESS` late, until it is terminated.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: How long the canary sleeps between wake-ups.
PERIOD = 0.01
#: A wake-up this late is written down.
NOTED_LATENESS = 0.03


def run(path: Path) -> None:
    with path.open("a", buffering=1) as out:
        while True:
            before = time.monotonic()
            time.sleep(PERIOD)
            late = time.monotonic() - before - PERIOD
            if late >= NOTED_LATENESS:
                out.write(f"{time.time():.3f} {late:.3f}\n")


def read(path: Path) -> list[tuple[float, float]]:
    """The late wake-ups written to ``path``: (epoch when it woke, seconds late)."""
    if not path.exists():
        return []
    noted = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            woke, late = line.split()
            noted.append((float(woke), float(late)))
    return noted


def worst_lateness(noted: list[tuple[float, float]], start: float, end: float) -> float:
    """The largest lateness of a wake-up between ``start`` and ``end`` (epoch), 0 when none."""
    return max((late for woke, late in noted if start <= woke <= end), default=0.0)


@contextlib.contextmanager
def canary(path: Path) -> Iterator[Path]:
    """Run the canary, writing to ``path``, for the ``with`` block; stop it at the end."""
    process = subprocess.Popen([sys.executable, "-m", "tests.stack.canary", str(path)], cwd=_root())
    try:
        yield path
    finally:
        process.terminate()
        process.wait(timeout=10)


def _root() -> Path:
    return Path(__file__).resolve().parents[2]


if __name__ == "__main__":
    run(Path(sys.argv[1]))
