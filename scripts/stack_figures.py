"""
Measure how long ``make airflow`` takes to start and how much memory it takes: ``make airflow-figures``.

Runs ``make airflow`` as a user would, in a fresh home (so the first start includes ``airflow db migrate``),
and prints:

- start-up time: from the command's start until the banner with the login is printed, the UI's login page
  answers and the REST API lists every example DAG (what a user waits for before they can log in and see
  the DAGs);
- memory when idle: the sum of the resident set size (RSS) of every process of the stack (make, the
  stack's own process, the emulator, the API server, scheduler, triggerer, DAG processor and their
  children), and the sum of their proportional set size (PSS: shared pages split between the processes
  that share them, which is what the machine really spends; RSS counts forked workers' shared pages again
  for each);
- the peak of both while every example DAG runs once (LocalExecutor workers come and go);
- the time to start again with the same home (no migration), and to stop after Ctrl-C.

With ``--celery`` (``make airflow-figures ARGS=--celery``) it then measures ``make airflow ARGS=--celery``
(PostgreSQL, Redis, two Celery workers, two triggerers) the same way: about 3 minutes more.

Run it while nothing else heavy runs (``flock /tmp/akool-heavy.lock make airflow-figures`` here): the figures
are otherwise inflated by the others. docs/airflow-stack.md has the last figures, in the one table every
other mention of the stack's start-up time points to.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The example DAGs a user expects to see listed (the e2e suite requires the same ones).
EXAMPLE_DAGS = ("akool_image_reage", "akool_video_reage", "akool_batch_reage", "akool_background_change")
_LOGIN = re.compile(r"login:\s+(\S+) / (\S+)")
MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Memory:
    """Summed RSS and PSS of a process tree, in bytes, and the RSS of each component."""

    rss: int = 0
    pss: int = 0
    processes: int = 0
    by_component: dict[str, int] = field(default_factory=dict)


def _component(proc: psutil.Process) -> str:
    # Most specific first: make's and the stack's own command lines name the emulator's port too.
    cmdline = " ".join(proc.cmdline())
    if proc.name() == "make":
        return "make"
    for needle, name in (
        ("tests.stack", "make airflow (python -m tests.stack)"),
        ("LocalExecutor", "LocalExecutor workers (parallelism 8)"),
        ("celery worker", "Celery workers"),
        # A worker's pool processes name themselves "[celeryd: worker-1@host:ForkPoolWorker-1]".
        ("celeryd:", "Celery workers"),
        ("api_server", "api-server"),
        ("api-server", "api-server"),
        ("scheduler", "scheduler"),
        ("triggerer", "triggerer"),
        ("dag-processor", "dag-processor"),
        ("dag_processor", "dag-processor"),
        ("emulator", "emulator"),
        ("postgres", "PostgreSQL"),
        ("redis-server", "Redis"),
    ):
        if needle in cmdline:
            return name
    return proc.name()


def measure_memory(root: psutil.Process, pss: bool = True) -> Memory:
    """
    Sum RSS (and PSS) over ``root`` and all its descendants; processes that vanish meanwhile are skipped.

    PSS reads every process's smaps, which costs CPU: ``pss=False`` for frequent samples.
    """
    memory = Memory()
    tree: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        tree = [root, *root.children(recursive=True)]
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = proc.memory_full_info() if pss else proc.memory_info()
            component = _component(proc)
            memory.rss += info.rss
            memory.pss += getattr(info, "pss", 0)
            memory.processes += 1
            memory.by_component[component] = memory.by_component.get(component, 0) + info.rss
    return memory


class RunningStack:
    """``make airflow`` in a process group of its own, with its output read line by line."""

    def __init__(self, home: Path, celery: bool = False) -> None:
        self.home = home
        self.api_port = _free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.started = time.monotonic()
        args = f"--home {home} --port {self.api_port} --emulator-port {_free_port()}"
        self.popen = subprocess.Popen(
            ["make", "--no-print-directory", "airflow", f"ARGS={args}{' --celery' if celery else ''}"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        self.login: tuple[str, str] | None = None
        self.banner_at: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.output.append(line)
            match = _LOGIN.search(line)
            if match and self.login is None:
                self.login = (match.group(1), match.group(2))
                self.banner_at = time.monotonic() - self.started

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return time.monotonic() - self.started

    def check_alive(self) -> None:
        """Fail with the output's tail if ``make airflow`` exited."""
        if self.popen.poll() is not None:
            tail = "".join(self.output[-40:])
            raise SystemExit(f"make airflow exited with {self.popen.returncode}:\n{tail}")

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 300.0) -> float:
        """Poll ``condition`` until it holds; return the seconds since the command started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(requests.RequestException, ValueError, KeyError):
                if condition():
                    return self.elapsed()
            time.sleep(0.25)
        raise SystemExit(f"timed out after {timeout:.0f} s waiting until {what}")

    def token(self) -> str:
        """A JWT for the admin, with the login the banner printed."""
        assert self.login is not None
        reply = requests.post(
            f"{self.url}/auth/token",
            json={"username": self.login[0], "password": self.login[1]},
            timeout=30,
        )
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def login_page_answers(self) -> bool:
        """Whether the UI's login page is served (the simple auth manager's page under /auth/)."""
        reply = requests.get(f"{self.url}/auth/login", timeout=5)
        return reply.status_code == 200 and "<html" in reply.text.lower()

    def dags_listed(self) -> bool:
        """Whether the REST API lists every example DAG (needs the login from the banner)."""
        if self.login is None:
            return False
        reply = requests.get(
            f"{self.url}/api/v2/dags",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=10,
        )
        reply.raise_for_status()
        listed = {dag["dag_id"] for dag in reply.json()["dags"]}
        return set(EXAMPLE_DAGS) <= listed

    def stop(self) -> float:
        """Ctrl-C, as a user would; return the seconds until every process is gone."""
        started = time.monotonic()
        tree: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            tree = [psutil.Process(self.popen.pid), *psutil.Process(self.popen.pid).children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGINT)
        try:
            self.popen.wait(90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
            raise SystemExit("make airflow did not stop within 90 s of Ctrl-C") from None
        _, alive = psutil.wait_procs(tree, timeout=30)
        if alive:
            raise SystemExit(f"processes left after Ctrl-C: {alive}")
        return time.monotonic() - started


@contextlib.contextmanager
def running(home: Path, celery: bool = False) -> Iterator[RunningStack]:
    """Start ``make airflow`` (``--celery``: the distributed stack) and stop it whatever happens."""
    stack = RunningStack(home, celery)
    try:
        yield stack
    finally:
        if stack.popen.poll() is None:
            stack.stop()


def run_every_example_dag(stack: RunningStack, sample: Callable[[], None]) -> float:
    """Trigger every example DAG once and wait for the runs, sampling memory; return the seconds taken."""
    headers = {"Authorization": f"Bearer {stack.token()}"}
    api = f"{stack.url}/api/v2"
    started = time.monotonic()
    runs = {}
    for dag_id in EXAMPLE_DAGS:
        requests.patch(f"{api}/dags/{dag_id}", json={"is_paused": False}, headers=headers, timeout=30)
        reply = requests.post(
            f"{api}/dags/{dag_id}/dagRuns", json={"logical_date": None}, headers=headers, timeout=30
        )
        reply.raise_for_status()
        runs[dag_id] = reply.json()["dag_run_id"]
    states: dict[str, str] = {}
    deadline = time.monotonic() + 600
    while len(states) < len(runs):
        stack.check_alive()
        sample()
        for dag_id, run_id in runs.items():
            reply = requests.get(f"{api}/dags/{dag_id}/dagRuns/{run_id}", headers=headers, timeout=30)
            if reply.ok and reply.json()["state"] in ("success", "failed"):
                states[dag_id] = reply.json()["state"]
        if time.monotonic() > deadline:
            raise SystemExit(f"example runs unfinished after 600 s: {states}")
        time.sleep(0.5)
    failed = {dag_id: state for dag_id, state in states.items() if state != "success"}
    if failed:
        tasks = {
            dag_id: {
                ti["task_id"]: (ti["state"], ti["try_number"])
                for ti in requests.get(
                    f"{api}/dags/{dag_id}/dagRuns/{runs[dag_id]}/taskInstances", headers=headers, timeout=30
                ).json()["task_instances"]
            }
            for dag_id in failed
        }
        raise SystemExit(f"example runs failed: {failed}; task states and tries: {tasks}")
    return time.monotonic() - started


def _gb(value: int) -> str:
    return f"{value / 1024 / MB:.2f} GB"


def wait_until_up(stack: RunningStack, which: str) -> list[tuple[str, str]]:
    """Wait until the login page answers and every example DAG is listed; return when each came."""
    login_page = stack.wait_for("the login page answers", stack.login_page_answers)
    dags = stack.wait_for("every example DAG is listed", stack.dags_listed)
    return [
        (f"{which}: banner with the login after", f"{stack.banner_at or 0:.1f} s"),
        (f"{which}: login page answers after", f"{login_page:.1f} s"),
        (f"{which}: example DAGs listed after", f"{dags:.1f} s"),
    ]


def measure(args: argparse.Namespace, celery: bool) -> list[tuple[str, str]]:
    """Start, load, stop and start again one stack in a fresh home; return its figures."""
    figures: list[tuple[str, str]] = []
    home = Path(tempfile.mkdtemp(prefix="akool-stack-figures-"))
    if celery:
        # PostgreSQL runs as the postgres user when we are root: it must enter the home.
        home.chmod(0o711)
    try:
        with running(home, celery) as stack:
            figures += wait_until_up(stack, "first start")
            time.sleep(args.settle)
            root = psutil.Process(stack.popen.pid)
            idle = measure_memory(root)
            figures += [
                (f"idle memory, RSS summed over {idle.processes} processes", _gb(idle.rss)),
                ("idle memory, PSS summed", _gb(idle.pss)),
                *[
                    (f"  RSS of {name}", f"{rss / MB:.0f} MB")
                    for name, rss in sorted(idle.by_component.items(), key=lambda item: -item[1])
                ],
            ]
            if not args.no_runs:
                peak = Memory()

                def sample() -> None:
                    nonlocal peak
                    now = measure_memory(root, pss=False)
                    if now.rss > peak.rss:
                        # PSS only for a new peak: reading every smaps each time would slow the runs.
                        peak = measure_memory(root)

                took = run_every_example_dag(stack, sample)
                figures += [
                    ("every example DAG run once, all at a time, took", f"{took:.1f} s"),
                    (
                        f"peak memory while they ran, RSS summed over {peak.processes} processes",
                        _gb(peak.rss),
                    ),
                    ("  PSS summed at that moment", _gb(peak.pss)),
                ]
            stopped = stack.stop()
            figures.append(("stop after Ctrl-C took", f"{stopped:.1f} s"))
        if not args.no_restart:
            with running(home, celery) as stack:
                figures += wait_until_up(stack, "second start (same home)")
    except BaseException:
        # Keep what explains the failure: the task logs and each component's output.
        print(f"kept the stack's home for a look: {home} (logs/, stack-output/)", file=sys.stderr)
        raise
    shutil.rmtree(home, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--no-runs", action="store_true", help="skip running the example DAGs")
    parser.add_argument("--no-restart", action="store_true", help="skip the second start with the same home")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait before the idle figure")
    parser.add_argument(
        "--celery",
        action="store_true",
        help="then measure make airflow ARGS=--celery (PostgreSQL, Redis, Celery) too: about 3 minutes more",
    )
    args = parser.parse_args(argv)

    machine = [("CPU cores", str(os.cpu_count())), ("load before", str(os.getloadavg()))]
    stacks = [("make airflow", measure(args, celery=False))]
    if args.celery:
        stacks.append(("make airflow ARGS=--celery", measure(args, celery=True)))
    for title, figures in [("the machine", machine), *stacks]:
        width = max(len(name) for name, _ in figures)
        print()
        print(f"{title}: start-up time and memory (scripts/stack_figures.py)")
        for name, value in figures:
            print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
