"""What the benchmarks share: the emulator in a process of its own, Airflow's environment, percentiles."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def postgres_installed() -> bool:
    """Whether PostgreSQL's server programs are here (Debian's ``postgresql``: ``make distributed-deps``)."""
    try:
        _postgres_bin_dir()
    except Exception:  # the stack helper's StackError, or it cannot be imported
        return False
    return True


def _postgres_bin_dir() -> Path:
    # The stack helper's lookup (the newest of Debian's /usr/lib/postgresql/*/bin): one place knows it.
    from tests.stack.airflow_stack import postgres_bin_dir

    return postgres_bin_dir()


@contextmanager
def postgres_database() -> Iterator[str]:
    """
    A private PostgreSQL server for one benchmark: yields the SQLAlchemy URL of its empty database.

    A plain process (``initdb``, then ``postgres``) with its data and its unix socket in a fresh temporary
    folder; no TCP at all (``listen_addresses=''``), so nothing listens beyond that folder, which only its
    owner may enter (``trust`` authentication on the socket is safe for that reason). Run as the ``postgres``
    user when we are root (the server refuses root). Stopped and removed at the end, also on failure.
    Settings as the distributed stack's (``tests/stack/airflow_stack.py``): a throw-away database, so no
    waiting for the disk at each commit.
    """
    bin_dir = _postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="akool-bench-postgres-"))
    data, sockets = root / "data", root / "run"
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    process: subprocess.Popen[bytes] | None = None
    log_path = root / "postgres.log"
    try:
        sockets.mkdir(mode=0o700)
        if as_user:
            # The postgres user must enter /tmp (world-searchable) and its own folders; nobody else can.
            for folder in (root, sockets):
                os.chown(folder, as_user["user"], as_user["group"])
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "airflow",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            **as_user,
        )
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    f"unix_socket_directories={sockets}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user,
            )
        import psycopg2

        deadline = time.monotonic() + 60
        while True:
            try:
                connection = psycopg2.connect(host=str(sockets), user="airflow", dbname="postgres")
                break
            except psycopg2.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start:\n{log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE airflow")
        finally:
            connection.close()
        yield f"postgresql+psycopg2://airflow@/airflow?host={sockets}"
    finally:
        if process is not None:
            # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)


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
