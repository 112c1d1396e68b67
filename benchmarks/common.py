"""What the benchmarks share: the emulator in a process of its own, Airflow's environment, percentiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "emulator-api-key"
#: An ``emulator-stuck`` sample: its jobs stay "processing" until the benchmark pins their status.
STUCK_SAMPLE = "portrait-emulator-stuck.jpg"


def airflow_env(emulator_url: str | None = None, home: str | None = None) -> dict[str, str]:
    """The environment of a benchmark process: a private AIRFLOW_HOME and, given a URL, the connection."""
    env = dict(os.environ)
    env["AIRFLOW_HOME"] = home or tempfile.mkdtemp(prefix="akool-bench-airflow-")
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if emulator_url is not None:
        env["AIRFLOW_CONN_AKOOL_DEFAULT"] = json.dumps(
            {"conn_type": "akool", "host": emulator_url, "password": API_KEY}
        )
    return env


@dataclass
class Emulator:
    """A running emulator process."""

    url: str
    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def control(self, method: str, path: str, body: object = None) -> object:
        response = requests.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def counts(self) -> dict[str, int]:
        ledger = self.control("GET", "ledger")
        assert isinstance(ledger, dict)
        counts: dict[str, int] = ledger["counts"]
        return counts


@contextmanager
def emulator_process(*extra_args: str) -> Iterator[Emulator]:
    """
    Serve the emulator from ``python -m airflow_provider_akool.emulator`` on a free loopback port.

    A process of its own, so the server never shares the measured event loop or its CPU accounting.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_akool.emulator", "--port", "0", *extra_args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        if " on " not in banner:
            raise RuntimeError(f"the emulator did not start: {banner!r}")
        url = banner.split(" on ", 1)[1].strip()
        emulator = Emulator(url=url, process=process)
        deadline = time.monotonic() + 30
        while True:
            try:
                emulator.control("GET", "health")
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield emulator
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table (it pastes into docs/performance.md as it is)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("| " + " | ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) + " |")
        if index == 0:
            print("| " + " | ".join("-" * (w - 1) + ":" for w in widths) + " |")
