"""
Run a command several times in a row while other processes keep every core busy (``make test-under-load``).

    python scripts/under_load.py --runs 3 -- .venv/bin/pytest -n 4 -m "not e2e and not distributed"

A test that a busy machine can fail is a defect (docs/testing.md): this is how the suite is shown not to have
one. One spinning process per core runs for the whole time; each run's outcome and minutes are printed, and
the exit status is the first failing run's. Not part of CI: its figures go in the change's note.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        for _ in range(100_000):
            pass


def main(argv: list[str]) -> int:
    at = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2, help="spinning processes")
    args = parser.parse_args(argv[:at])
    command = argv[at + 1 :]
    if not command:
        parser.error("give the command after --")
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.burners)]
    for burner in burners:
        burner.start()
    results: list[tuple[int, float]] = []
    try:
        for run in range(1, args.runs + 1):
            print(f"--- run {run} of {args.runs}, {args.burners} spinning processes beside it", flush=True)
            started = time.monotonic()
            code = subprocess.call(command)
            results.append((code, time.monotonic() - started))
    finally:
        stop.set()
        for burner in burners:
            burner.join(5)
            if burner.is_alive():
                burner.kill()
    print(f"\nUnder load ({args.burners} spinning processes on {os.cpu_count()} cores):")
    for run, (code, seconds) in enumerate(results, 1):
        print(f"  run {run}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {seconds / 60:.1f} min")
    return next((code for code, _ in results if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
