"""
Run the whole Airflow stack on loopback against the local Akool emulator: ``make airflow``.

Starts the emulator and Airflow's ``api-server``, ``scheduler``, ``triggerer`` and ``dag-processor``
(LocalExecutor, SQLite, a private ``AIRFLOW_HOME``), all bound to 127.0.0.1, loads the repository's
``dags/``, creates the ``akool_default`` connection through the REST API so that it shows in the UI, and
logs in with a generated admin password. Every process runs in a process group of its own, and
:meth:`AirflowStack.stop` ends each group, so nothing outlives the stack.

Run as ``python -m tests.stack`` (what ``make airflow`` does). As a library (the end-to-end tests)::

    with AirflowStack(StackConfig(home=tmp_path)) as stack:
        run_id = stack.trigger_dag("akool_image_reage")
        stack.wait_for_run("akool_image_reage", run_id)

With ``--celery`` (:attr:`StackConfig.celery`) it runs the distributed engine instead: PostgreSQL (the
metadata database and Celery's result backend) and Redis (the broker) from Debian's packages, each a plain
process with its data in the home, ``CeleryExecutor`` with two ``airflow celery worker`` processes, and two
triggerers. See ``docs/airflow-stack.md`` and ``docs/deployment.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import psutil
import requests

log = logging.getLogger("airflow_stack")

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
ADMIN_USER = "admin"
CONNECTION_ID = "akool_default"

# The order of start-up; stop() goes the other way so the scheduler stops handing out work first.
AIRFLOW_COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}
# /api/v2/monitor/health names the components like this.
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")

#: Services the Airflow components need; they are started first and stopped last.
SERVICES = ("emulator", "postgres", "redis")
#: Debian's packages of the distributed stack's services.
DISTRIBUTED_PACKAGES = {"postgres": "postgresql", "redis-server": "redis-server"}
POSTGRES_USER = "airflow"
POSTGRES_DB = "airflow"

STOP_GRACE_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1
#: Celery's line once a worker consumes tasks: "worker-1@host ready."
WORKER_READY = re.compile(r"@\S+ ready\.")
#: The clientId the emulator signs callbacks with (its default; ``--client-id``).
EMULATOR_CLIENT_ID = "emulator-client-id"
_EMULATOR_BANNER = re.compile(r"Akool API emulator on (http://\S+)")
#: The section of docs/airflow-stack.md with the measured start-up times (make airflow-figures).
FIGURES_SECTION = "Start-up time and memory: `make airflow-figures`"


class StackError(RuntimeError):
    """The stack could not start, or a call to it failed."""


@dataclass
class StackConfig:
    """
    How to run the stack.

    :param home: The private ``AIRFLOW_HOME``: database, logs, generated secrets, process output.
    :param dags_folder: The DAGs to load.
    :param api_port: The API server's port; 0 picks a free one.
    :param emulator_port: The emulator's port; 0 picks a free one.
    :param fall_back_to_free_ports: Take a free port when a fixed one is busy instead of failing.
    :param queued_seconds: How long an emulated job stays queued; long enough that a deferrable task
        finds its job unfinished and really defers.
    :param processing_seconds: How long an emulated image reage stays processing.
    :param video_processing_seconds: How long an emulated video reage stays processing.
    :param bg_processing_seconds: How long an emulated background change stays processing.
    :param default_deferrable: ``[operators] default_deferrable``, so the example DAGs use the triggerer.
    :param triggerer_heartbeat_seconds: ``[triggerer] job_heartbeat_sec``.
    :param triggerer_health_check_threshold: After this many seconds without a heartbeat a triggerer counts
        as dead and another one takes over its triggers (Airflow's default of 30 s makes a restart slow).
    :param demo_poll_interval: ``AKOOL_DEMO_POLL_INTERVAL``: how often the example DAGs poll Akool.
    :param health_timeout: Seconds to wait for every component to report healthy.
    :param parallelism: ``[core] parallelism``: task slots, each a LocalExecutor worker process.
    :param extra_env: More environment variables for every Airflow process (e.g. ``AIRFLOW__...``).
    :param celery: Run the distributed engine: PostgreSQL, Redis, ``CeleryExecutor`` with
        ``celery_workers`` workers (SQLite and LocalExecutor otherwise).
    :param celery_workers: How many ``airflow celery worker`` processes.
    :param worker_concurrency: Task slots of each Celery worker (its ``-c``).
    :param triggerers: How many triggerers; each after the previous one's job row exists, so that they can
        be told apart.
    :param task_heartbeat_timeout: ``[scheduler] task_instance_heartbeat_timeout``: after this many seconds
        without a heartbeat from its worker a running task counts as lost and is retried or failed
        (Airflow's default is 300); None leaves Airflow's default.
    """

    home: Path
    dags_folder: Path = REPO_ROOT / "dags"
    api_port: int = 0
    emulator_port: int = 0
    fall_back_to_free_ports: bool = False
    queued_seconds: float = 2.0
    processing_seconds: float = 6.0
    video_processing_seconds: float = 10.0
    bg_processing_seconds: float = 4.0
    default_deferrable: bool = True
    triggerer_heartbeat_seconds: float = 1.0
    triggerer_health_check_threshold: float = 5.0
    demo_poll_interval: float = 5.0
    health_timeout: float = 180.0
    parallelism: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    celery: bool = False
    celery_workers: int = 2
    worker_concurrency: int = 4
    triggerers: int = 1
    task_heartbeat_timeout: float | None = None

    def triggerer_names(self) -> list[str]:
        """The component names of the triggerers: ``triggerer``, or ``triggerer-1``, ``triggerer-2``, ..."""
        if self.triggerers == 1:
            return ["triggerer"]
        return [f"triggerer-{number}" for number in range(1, self.triggerers + 1)]

    def worker_names(self) -> list[str]:
        """The component names of the Celery workers (none without ``celery``)."""
        return [f"worker-{number}" for number in range(1, self.celery_workers + 1)] if self.celery else []


@dataclass
class _Managed:
    """One started process: the leader of its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    #: Where this process's output starts in ``log_path``: a kept home appends to the last start's output.
    log_offset: int = 0
    #: What asks it to stop: PostgreSQL's SIGTERM waits for every client to leave, SIGINT does not.
    stop_signal: signal.Signals = signal.SIGTERM

    def output(self) -> str:
        """What this process printed so far."""
        with self.log_path.open("rb") as log_file:
            log_file.seek(self.log_offset)
            return log_file.read().decode(errors="replace")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def free_port() -> int:
    """A port that was free on loopback a moment ago (the OS does not hand it out again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the API server (uvicorn) and the emulator bind: a connection of a stack stopped a moment ago,
        # left in TIME-WAIT, does not keep them from the port, so it must not make the stack move away
        # from it; a socket that listens on the port still counts (Linux refuses that bind).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def choose_port(wanted: int, fall_back: bool, what: str) -> int:
    """
    Return ``wanted`` if it is free, else a free port when ``fall_back`` (with a warning).

    :param wanted: The port asked for; 0 picks a free one.
    :param fall_back: Take a free port when ``wanted`` is busy.
    :param what: What the port is for, in the messages.
    :raises StackError: when ``wanted`` is busy and not ``fall_back``.
    """
    if wanted == 0:
        return free_port()
    if port_free(wanted):
        return wanted
    if not fall_back:
        raise StackError(f"port {wanted} for the {what} is in use on {LOOPBACK}")
    port = free_port()
    log.warning("Port %s for the %s is in use; using %s instead", wanted, what, port)
    return port


def _new_emulator_api_key() -> str:
    """A new API key for the emulator."""
    # 32 characters: also a valid clientSecret (an AES-256 key), so the emulator signs its webhook callbacks
    # with it and the stack's Akool webhook receiver verifies them. Hex: a key starting with "-"
    # (token_urlsafe) would be taken for an option by the emulator's CLI.
    return secrets.token_hex(16)


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal, stop() still cleans up
        return None


# Looked up once here: the child between fork and exec must not load libraries (the loader's lock may be
# held by another thread of the parent, such as a test's helper thread, at the moment of the fork).
_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    # Runs in the child before exec: if the stack's own process dies without stopping (SIGKILL, OOM),
    # the kernel sends SIGTERM to each component, which then shuts its own workers down. Linux sends it
    # when the thread that started the child exits, so components are started from long-lived threads.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def postgres_bin_dir() -> Path:
    """Where Debian keeps PostgreSQL's server programs (``initdb``, ``postgres``): the newest version."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise StackError("PostgreSQL's server is not installed (Debian package postgresql)")


def missing_distributed_packages() -> list[str]:
    """The Debian packages of the distributed stack that are not installed."""
    missing = []
    try:
        postgres_bin_dir()
    except StackError:
        missing.append(DISTRIBUTED_PACKAGES["postgres"])
    if shutil.which("redis-server") is None:
        missing.append(DISTRIBUTED_PACKAGES["redis-server"])
    return missing


def install_distributed_packages() -> list[str]:
    """
    Install PostgreSQL and Redis with apt where missing (root only) and return what is still missing.

    Only the packages: their own services are not started (Debian's start scripts need systemd); the stack
    runs each as a plain process with its data in its home.
    """
    missing = missing_distributed_packages()
    if not missing or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return missing
    log.info("Installing %s with apt-get", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        result = subprocess.run(argv, env=env, check=False, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            log.error("%s failed:\n%s", " ".join(argv[:2]), _tail(result.stdout + result.stderr))
            break
    return missing_distributed_packages()


def require_distributed_packages() -> None:
    """Raise a :class:`StackError` that says what to install when PostgreSQL or Redis is missing."""
    missing = install_distributed_packages()
    if missing:
        raise StackError(
            f"the --celery stack needs Debian's {' and '.join(missing)}, which apt-get could not install "
            f"here (not root, or no apt): install them (apt-get install {' '.join(missing)})"
        )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


class AirflowStack:
    """
    The emulator and Airflow's four components on loopback; a context manager.

    :param config: How to run it.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.home = config.home.resolve()
        self.output_dir = self.home / "stack-output"
        self.password = ""
        self.api_key = ""
        self.api_port = 0
        self.emulator_url = ""
        self.postgres_port = 0
        self.redis_port = 0
        #: The TriggererJob id of each triggerer by component name, once it heartbeats.
        self.triggerer_jobs: dict[str, int] = {}
        self._secrets: dict[str, str] = {}
        self._env: dict[str, str] = {}
        self._processes: dict[str, _Managed] = {}
        self._token: str | None = None
        self._issued: list[str] = []
        self._session = requests.Session()
        # restart_triggerer() and stop() may come from different threads (a test and a signal handler).
        self._lock = threading.RLock()

    # --- Public surface -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The UI and REST base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def secrets_file(self) -> Path:
        """``stack-secrets.json`` in the home (mode 600): the login, Airflow's secrets, the emulator's key."""
        return self.home / "stack-secrets.json"

    @property
    def username(self) -> str:
        """The admin login."""
        return ADMIN_USER

    def secret_values(self) -> dict[str, str]:
        """Every credential of this stack by name (API key, password, secrets, JWTs), to look for in logs."""
        values = {
            "the Akool API key": self.api_key,
            "the admin password": self.password,
            "the JWT secret": self._secrets.get("jwt_secret", ""),
            "the API secret key": self._secrets.get("api_secret_key", ""),
            "the Fernet key": self._secrets.get("fernet_key", ""),
            "the PostgreSQL password": self._secrets.get("postgres_password", "")
            if self.config.celery
            else "",
            "the Redis password": self._secrets.get("redis_password", "") if self.config.celery else "",
        }
        values.update({f"REST JWT #{number}": token for number, token in enumerate(self._issued, 1)})
        return {name: value for name, value in values.items() if value}

    def pid(self, name: str) -> int:
        """The pid of a running component: ``emulator``, ``api-server``, ``scheduler``, ..."""
        return self._processes[name].pid

    def process_tree(self) -> list[psutil.Process]:
        """Every process the stack started, with all their descendants, as they are now."""
        found: list[psutil.Process] = []
        for managed in self._processes.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                leader = psutil.Process(managed.pid)
                found.append(leader)
                found.extend(leader.children(recursive=True))
        return found

    def start(self) -> AirflowStack:
        """Start everything and return once every component is healthy and the connection exists."""
        try:
            self.prepare_home()
            self.api_port = choose_port(self.config.api_port, self.config.fall_back_to_free_ports, "API")
            emulator_port = choose_port(
                self.config.emulator_port, self.config.fall_back_to_free_ports, "emulator"
            )
            started = time.monotonic()
            self._env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
            self._start_emulator(emulator_port)
            if self.config.celery:
                require_distributed_packages()
                self.postgres_port = free_port()
                self.redis_port = free_port()
                self._start_postgres()
                self._start_redis()
            self._env = self._build_env()
            self._migrate_db()
            # Airflow wrote its defaults there (webhook_receiver = False, ...): make it say what is in force.
            write_settings_into_cfg(self.home / "airflow.cfg", self._env)
            triggerers = self.config.triggerer_names()
            for name in AIRFLOW_COMPONENTS:
                self._start_component(triggerers[0] if name == "triggerer" else name)
            for name in self.config.worker_names():
                self._start_component(name)
            self._wait_healthy()
            self._note_first_triggerer(triggerers[0])
            for name in triggerers[1:]:
                # One after the other: TriggererJob rows name no pid, so a new row is the new triggerer's.
                self.start_triggerer(name)
            for name in self.config.worker_names():
                self._wait_for_output(self._processes[name], WORKER_READY, "ready", 120)
            self._create_connection()
            log.info("Airflow stack healthy after %.1f s at %s", time.monotonic() - started, self.url)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process the stack started, with its whole process group; safe to call twice."""
        with self._lock:
            processes = list(reversed(self._processes.values()))
            self._processes.clear()
        if processes:
            # Descendants are noted first, so a worker that left its group still gets killed at the end.
            tree: list[psutil.Process] = []
            for managed in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    tree.extend(psutil.Process(managed.pid).children(recursive=True))
            # Airflow first, while its database and broker still answer; then the services.
            self._terminate([managed for managed in processes if managed.name not in SERVICES])
            self._terminate([managed for managed in processes if managed.name in SERVICES])
            for proc in tree:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    proc.kill()
            psutil.wait_procs(tree, timeout=5)
        self._session.close()

    def _terminate(self, processes: list[_Managed]) -> None:
        # The scheduler's LocalExecutor answers the first SIGTERM with "waiting for running tasks to
        # finish. Signal again if you don't want to wait" and may wait for good: the second SIGTERM is
        # its documented way out, SIGKILL the last resort.
        for signum, grace in (
            (None, 5.0),
            (None, STOP_GRACE_SECONDS),
            (signal.SIGKILL, 5.0),
        ):
            running = [managed for managed in processes if managed.alive()]
            if not running:
                return
            if signum == signal.SIGKILL:
                log.warning("Killing %s: still running after SIGTERM", ", ".join(m.name for m in running))
            for managed in running:
                self._signal_group(managed, signum or managed.stop_signal)
            deadline = time.monotonic() + grace
            for managed in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    managed.popen.wait(max(0.05, deadline - time.monotonic()))
        for managed in processes:
            # Reap the leaders too, so no zombie is left behind.
            with contextlib.suppress(subprocess.TimeoutExpired):
                managed.popen.wait(1)

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def restart_triggerer(self, name: str = "triggerer") -> int:
        """SIGKILL a triggerer (its whole group), start a new one, and return the new pid once it runs."""
        self.kill_component(name)
        return self.start_triggerer(name)

    def kill_component(self, name: str) -> None:
        """SIGKILL a component with its whole process group and every descendant, as a crash would."""
        with self._lock:
            old = self._processes.pop(name)
        children = []
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(old.pid).children(recursive=True)
        self._signal_group(old, signal.SIGKILL)
        old.popen.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def component_alive(self, name: str) -> bool:
        """Whether the component ``name`` was started and still runs."""
        with self._lock:
            managed = self._processes.get(name)
        return managed is not None and managed.alive()

    def signal_component(self, name: str, signum: signal.Signals) -> None:
        """Send ``signum`` to a component's whole process group (SIGSTOP and SIGCONT: a stall)."""
        self._signal_group(self._processes[name], signum)

    def start_component(self, name: str) -> int:
        """Start a component that is not running (after :meth:`kill_component`); return its pid."""
        if name in self._processes:
            raise StackError(f"{name} is running already")
        managed = self._start_component(name)
        if name.startswith("worker-"):
            self._wait_for_output(managed, WORKER_READY, "ready", 120)
        return managed.pid

    def start_triggerer(self, name: str) -> int:
        """Start the triggerer ``name`` and return its pid once its new TriggererJob heartbeats."""
        old_ids = {job["id"] for job in self._triggerer_jobs()}
        managed = self._start_component(name)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            self._check_alive()
            new = [job["id"] for job in self._triggerer_jobs(alive_only=True) if job["id"] not in old_ids]
            if new:
                self.triggerer_jobs[name] = int(new[0])
                return managed.pid
            time.sleep(0.5)
        raise StackError(f"the new triggerer did not heartbeat:\n{self._output_tail(managed)}")

    def restart_postgres(self) -> float:
        """Stop PostgreSQL (a fast shutdown: clients are cut off), start it again; return the seconds down."""
        if not self.config.celery:
            raise StackError("only the --celery stack runs PostgreSQL")
        with self._lock:
            old = self._processes.pop("postgres")
        stopped = time.monotonic()
        self._terminate([old])
        self._start_postgres()
        return time.monotonic() - stopped

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement on the stack's metadata database (``--celery``); return its rows."""
        if not self.config.celery:
            raise StackError("only the --celery stack runs PostgreSQL")
        import psycopg2

        connection = psycopg2.connect(
            host=LOOPBACK,
            port=self.postgres_port,
            user=POSTGRES_USER,
            password=self._secrets["postgres_password"],
            dbname=POSTGRES_DB,
            connect_timeout=10,
        )
        try:
            connection.set_session(readonly=True, autocommit=True)
            with connection.cursor() as cursor:
                cursor.execute(sql, tuple(params))
                return list(cursor.fetchall())
        finally:
            connection.close()

    def token(self, refresh: bool = False) -> str:
        """A JWT for the admin user (``POST /auth/token``), cached."""
        if self._token is None or refresh:
            response = self._session.post(
                f"{self.url}/auth/token",
                json={"username": ADMIN_USER, "password": self.password},
                timeout=30,
            )
            if response.status_code >= 400:
                raise StackError(f"login failed: {response.status_code} {response.text[:200]}")
            self._token = str(response.json()["access_token"])
            self._issued.append(self._token)
        return self._token

    def api(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        ok: Sequence[int] = (200, 201, 204),
    ) -> Any:
        """
        Call the REST API (``path`` below ``/api/v2``, e.g. ``"/dags"``) as the admin; return the JSON.

        :raises StackError: on a status not in ``ok``, with the reply's body.
        """
        response = self._session.request(
            method,
            f"{self.url}/api/v2{path}",
            json=json_body,
            params=params,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60,
        )
        if response.status_code not in ok:
            raise StackError(f"{method} {path}: {response.status_code} {response.text[:1000]}")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def ledger(self) -> dict[str, Any]:
        """The emulator's ledger: ``counts`` per endpoint, ``requests``, ``listbyids_ids`` and ``jobs``."""
        response = self._session.get(f"{self.emulator_url}/_emulator/ledger", timeout=30)
        response.raise_for_status()
        ledger: dict[str, Any] = response.json()
        return ledger

    def set_job_status(self, job_id: str, status: int) -> None:
        """Pin an emulated job's status (1 queued, 2 processing, 3 success, 4 failed) by its ``_id``."""
        response = self._session.post(
            f"{self.emulator_url}/_emulator/jobs/{job_id}/status", json={"status": status}, timeout=30
        )
        response.raise_for_status()

    # --- DAG runs -------------------------------------------------------------------------------

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 120.0) -> None:
        """Wait until the DAG processor has stored each of ``dag_ids``; fail with the import errors if not."""
        deadline = time.monotonic() + timeout
        missing = set(dag_ids)
        while True:
            found = {dag["dag_id"] for dag in self.api("GET", "/dags", params={"limit": 1000})["dags"]}
            missing = set(dag_ids) - found
            if not missing:
                return
            if time.monotonic() > deadline:
                errors = self.api("GET", "/importErrors")["import_errors"]
                raise StackError(
                    f"DAGs not loaded after {timeout:.0f} s: {sorted(missing)}; errors: {errors}"
                )
            self._check_alive()
            time.sleep(1)

    def trigger_dag(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause ``dag_id``, start a run now, and return its run id."""
        self.api("PATCH", f"/dags/{quote(dag_id)}", json_body={"is_paused": False})
        run = self.api(
            "POST",
            f"/dags/{quote(dag_id)}/dagRuns",
            # No logical date: several runs of one DAG may start in the same second.
            json_body={"logical_date": None, "conf": conf or {}},
        )
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The run as the REST API gives it."""
        run: dict[str, Any] = self.api("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (mapped ones included)."""
        reply = self.api(
            "GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances", params={"limit": 1000}
        )
        instances: list[dict[str, Any]] = reply["task_instances"]
        return instances

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180.0) -> str:
        """Wait until the run finishes and return its state (``success`` or ``failed``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = str(self.dag_run(dag_id, run_id)["state"])
            if state in ("success", "failed"):
                return state
            self._check_alive()
            time.sleep(1)
        raise StackError(f"{dag_id} {run_id} still running after {timeout:.0f} s")

    def task_log(self, ti: dict[str, Any], try_number: int) -> str:
        """One try's log through the REST API, as text (one JSON document per line)."""
        path = (
            f"/dags/{quote(ti['dag_id'])}/dagRuns/{quote(ti['dag_run_id'])}"
            f"/taskInstances/{quote(ti['task_id'])}/logs/{try_number}"
        )
        reply = self.api("GET", path, params={"full_content": "true", "map_index": ti.get("map_index", -1)})
        return "\n".join(
            json.dumps(entry) if not isinstance(entry, str) else entry for entry in reply.get("content", [])
        )

    def task_logs(self) -> dict[str, str]:
        """
        Every task log of every run in this stack: each try through the REST API, and every file under
        ``logs/`` (task, trigger, scheduler and DAG processor logs), keyed by where it came from.
        """
        logs: dict[str, str] = {}
        instances = self.api(
            "GET", "/dags/~/dagRuns/~/taskInstances", params={"limit": 1000, "order_by": "id"}
        )["task_instances"]
        for ti in instances:
            for try_number in range(1, int(ti.get("try_number") or 0) + 1):
                where = f"{ti['dag_id']}/{ti['dag_run_id']}/{ti['task_id']}[{ti.get('map_index', -1)}]"
                logs[f"api:{where}#{try_number}"] = self.task_log(ti, try_number)
        logs_root = self.home / "logs"
        for path in sorted(logs_root.rglob("*")) if logs_root.exists() else []:
            if path.is_file():
                logs[f"file:{path.relative_to(self.home)}"] = path.read_text(errors="replace")
        return logs

    def component_output(self) -> dict[str, str]:
        """What each Airflow component printed (the emulator's banner shows its key on purpose: left out)."""
        return {
            path.name: path.read_text(errors="replace")
            for path in sorted(self.output_dir.glob("*.log"))
            if not path.name.startswith("emulator")
        }

    # --- Start-up -------------------------------------------------------------------------------

    def prepare_home(self) -> None:
        """
        Create the home and its secrets (:attr:`secrets_file`), or read those of the last start.

        :meth:`start` calls it first; it starts nothing.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(exist_ok=True)
        secrets_file = self.secrets_file
        if secrets_file.exists():
            self._secrets = json.loads(secrets_file.read_text())
        else:
            from cryptography.fernet import Fernet

            # Kept with the home: the Fernet key must outlive a restart, or stored connections become
            # unreadable; the admin password stays the same so a browser session can log in again.
            self._secrets = {
                "admin_password": secrets.token_urlsafe(12),
                "jwt_secret": secrets.token_urlsafe(64),
                "api_secret_key": secrets.token_urlsafe(32),
                "fernet_key": Fernet.generate_key().decode(),
            }
        # Added to an older home's secrets too (made by a stack without --celery, or before the emulator's
        # key was kept).
        new = {
            "postgres_password": secrets.token_urlsafe(24),
            "redis_password": secrets.token_urlsafe(24),
            "emulator_api_key": _new_emulator_api_key(),
        }
        missing = {name: value for name, value in new.items() if name not in self._secrets}
        if missing or not secrets_file.exists():
            self._secrets.update(missing)
            secrets_file.touch(mode=0o600)
            secrets_file.write_text(json.dumps(self._secrets, indent=2))
        # Also a file an older stack left with the umask's mode: it holds the Fernet key.
        secrets_file.chmod(0o600)
        self.password = self._secrets["admin_password"]
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps({ADMIN_USER: self.password}))
        # Kept with the home like the login: a connection a user adds by hand in the UI (with the key from
        # the banner) still works after a restart; --fresh makes a new one.
        self.api_key = self._secrets["emulator_api_key"]

    def _build_env(self) -> dict[str, str]:
        # Nothing Airflow-related leaks in from the caller (the unit tests' conftest sets AIRFLOW_HOME and
        # an AIRFLOW_CONN_ variable): the stack is configured here and only here.
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        config = self.config
        threshold = f"{config.triggerer_health_check_threshold:g}"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__DAGS_FOLDER": str(config.dags_folder.resolve()),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # LocalExecutor forks one worker per slot (32 by default, ~150 MB each): a few are enough.
                "AIRFLOW__CORE__PARALLELISM": str(config.parallelism),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__FERNET_KEY": self._secrets["fernet_key"],
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.home / "simple_auth_manager_passwords.json"
                ),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secrets["jwt_secret"],
                "AIRFLOW__API__SECRET_KEY": self._secrets["api_secret_key"],
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                # Workers ask the API server for logs of running tries; keep that on loopback too.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(config.default_deferrable),
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": f"{config.triggerer_heartbeat_seconds:g}",
                # "%g": Airflow 3.1 reads the threshold with getint(), which refuses "5.0".
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": threshold,
                # New DAG files show up within seconds rather than the default five minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                # The provider's webhook receiver (/akool-webhook), for operators with webhook_url="airflow".
                "AIRFLOW__AKOOL__WEBHOOK_RECEIVER": "True",
                # The example DAGs read these at parse time: inputs from this emulator, wherever it
                # listens, and their results kept in the home.
                "AKOOL_DEMO_MEDIA_BASE_URL": f"{self.emulator_url}/media/samples/",
                "AKOOL_DEMO_POLL_INTERVAL": f"{config.demo_poll_interval:g}",
                "AKOOL_DEMO_OUTPUT_PATH": str(self.home / "results"),
            }
        )
        if config.task_heartbeat_timeout is not None:
            env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = f"{config.task_heartbeat_timeout:g}"
        if config.celery:
            password = quote(self._secrets["postgres_password"], safe="")
            redis_password = quote(self._secrets["redis_password"], safe="")
            database = f"{POSTGRES_USER}:{password}@{LOOPBACK}:{self.postgres_port}/{POSTGRES_DB}"
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__CORE__PARALLELISM": str(max(config.parallelism, self._celery_slots())),
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{database}",
                    # "db+postgresql://" makes Celery load psycopg (3), not installed: name the driver.
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{database}",
                    "AIRFLOW__CELERY__BROKER_URL": f"redis://:{redis_password}@{LOOPBACK}:{self.redis_port}/0",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(config.worker_concurrency),
                }
            )
        env.update(config.extra_env)
        return env

    def _celery_slots(self) -> int:
        return self.config.celery_workers * self.config.worker_concurrency

    def _popen(
        self,
        name: str,
        argv: list[str],
        user: dict[str, Any] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> _Managed:
        log_path = self.output_dir / f"{name}.log"
        with log_path.open("ab") as output:
            offset = output.tell()
            popen = subprocess.Popen(
                argv,
                cwd=self.home,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own process group (and session): stop() signals the group, so every worker too.
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **(user or {}),
            )
        managed = _Managed(name, popen, log_path, offset, stop_signal)
        with self._lock:
            self._processes[name] = managed
        return managed

    def _start_emulator(self, port: int) -> None:
        config = self.config
        managed = self._popen(
            "emulator",
            [
                sys.executable,
                "-m",
                "airflow_provider_akool.emulator",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--api-key",
                self.api_key,
                "--queued-seconds",
                str(config.queued_seconds),
                "--processing-seconds",
                str(config.processing_seconds),
                "--video-processing-seconds",
                str(config.video_processing_seconds),
                "--bg-processing-seconds",
                str(config.bg_processing_seconds),
            ],
        )
        deadline = time.monotonic() + 30
        url = ""
        while not url:
            if not managed.alive() or time.monotonic() > deadline:
                raise StackError(f"the emulator did not start:\n{self._output_tail(managed)}")
            found = _EMULATOR_BANNER.search(managed.output())
            url = found.group(1) if found else ""
            time.sleep(0.05)
        self.emulator_url = url
        while True:
            with contextlib.suppress(requests.RequestException):
                if self._session.get(f"{url}/_emulator/health", timeout=5).ok:
                    return
            if not managed.alive() or time.monotonic() > deadline:
                raise StackError(f"the emulator is not healthy:\n{self._output_tail(managed)}")
            time.sleep(0.05)

    def _migrate_db(self) -> None:
        # Before any other Airflow process, and through tests.stack.migrate: plain `airflow db migrate`
        # first inserts its audit-log row into a table that a new database does not have yet (an ERROR in
        # PostgreSQL's log at every first start of the --celery stack).
        self._run_logged(
            "db-migrate", [sys.executable, "-m", "tests.stack.migrate"], what="airflow db migrate"
        )

    def _start_component(self, name: str) -> _Managed:
        if name.startswith("triggerer"):
            argv = AIRFLOW_COMPONENTS["triggerer"]
        elif name.startswith("worker-"):
            argv = [
                "celery",
                "worker",
                "--skip-serve-logs",
                "--concurrency",
                str(self.config.worker_concurrency),
                # Each its own Celery node name and pid file in the one home.
                "--celery-hostname",
                f"{name}@%h",
                "--pid",
                str(self.output_dir / f"{name}.pid"),
            ]
        else:
            argv = AIRFLOW_COMPONENTS[name]
        return self._popen(name, [sys.executable, "-m", "airflow", *argv])

    def _wait_for_output(
        self, managed: _Managed, pattern: re.Pattern[str], what: str, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while not pattern.search(managed.output()):
            if not managed.alive() or time.monotonic() > deadline:
                raise StackError(f"{managed.name} is not {what}:\n{self._output_tail(managed)}")
            time.sleep(0.3)

    def _note_first_triggerer(self, name: str) -> None:
        jobs = self._triggerer_jobs(alive_only=True)
        if len(jobs) == 1:
            self.triggerer_jobs[name] = int(jobs[0]["id"])

    # --- PostgreSQL and Redis (the --celery stack) ---------------------------------------------

    def _service_user(self) -> dict[str, Any]:
        """Popen arguments that run PostgreSQL as the ``postgres`` user when we are root (it refuses root)."""
        if os.geteuid() != 0:
            return {}
        return {"user": "postgres", "group": pwd.getpwnam("postgres").pw_gid, "extra_groups": []}

    def _chown_for_postgres(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _start_postgres(self) -> None:
        bin_dir = postgres_bin_dir()
        root = self.home / "postgres"
        data, sockets = root / "data", root / "run"
        for folder in (root, sockets):
            folder.mkdir(mode=0o700, exist_ok=True)
            self._chown_for_postgres(folder)
        if os.geteuid() == 0:
            # The postgres user must reach its folders through the home and every folder above it.
            for parent in [self.home, *self.home.parents]:
                if not parent.stat().st_mode & 0o001:
                    raise StackError(
                        f"PostgreSQL runs as the postgres user, which cannot enter {parent} (mode "
                        f"{parent.stat().st_mode & 0o777:o}): put the stack's home where others may enter "
                        "(e.g. under /tmp or the repository)"
                    )
        if not (data / "PG_VERSION").exists():
            password_file = root / "initdb-password"
            password_file.write_text(self._secrets["postgres_password"])
            self._chown_for_postgres(password_file)
            try:
                self._run_logged(
                    "postgres-initdb",
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        POSTGRES_USER,
                        "--auth=scram-sha-256",
                        f"--pwfile={password_file}",
                        "-E",
                        "UTF8",
                        "--no-instructions",
                    ],
                    user=self._service_user(),
                )
            finally:
                password_file.unlink(missing_ok=True)
        managed = self._popen(
            "postgres",
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.postgres_port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                f"unix_socket_directories={sockets}",
                "-c",
                "max_connections=300",
                # A throw-away database on one machine: no waiting for the disk at each commit.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                # A session that waits over a second for a row lock says so in postgres.log, with the
                # statements: a triggerer stopped inside a transaction blocks the others that way (see
                # docs/deployment.md, "A triggerer that stalls").
                "-c",
                "log_lock_waits=on",
            ],
            user=self._service_user(),
            stop_signal=signal.SIGINT,
        )
        import psycopg2

        deadline = time.monotonic() + 60
        while True:
            try:
                connection = psycopg2.connect(
                    host=LOOPBACK,
                    port=self.postgres_port,
                    user=POSTGRES_USER,
                    password=self._secrets["postgres_password"],
                    dbname="postgres",
                    connect_timeout=5,
                )
                break
            except psycopg2.OperationalError as error:
                if not managed.alive() or time.monotonic() > deadline:
                    raise StackError(
                        f"PostgreSQL did not start ({error}):\n{self._output_tail(managed)}"
                    ) from None
                time.sleep(0.2)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DB,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {POSTGRES_DB}")
        finally:
            connection.close()

    def _start_redis(self) -> None:
        folder = self.home / "redis"
        folder.mkdir(mode=0o700, exist_ok=True)
        config = folder / "redis.conf"
        # The password goes in a file (mode 600), not on a command line every user can read with ps.
        config.touch(mode=0o600)
        config.write_text(
            "\n".join(
                [
                    f"port {self.redis_port}",
                    f"bind {LOOPBACK}",
                    "protected-mode yes",
                    f"requirepass {self._secrets['redis_password']}",
                    f"dir {folder}",
                    'save ""',
                    "appendonly no",
                    "",
                ]
            )
        )
        managed = self._popen("redis", [shutil.which("redis-server") or "redis-server", str(config)])
        self._wait_for_output(managed, re.compile(r"Ready to accept connections"), "ready", 30)

    def _run_logged(
        self, name: str, argv: list[str], user: dict[str, Any] | None = None, what: str | None = None
    ) -> None:
        """Run ``argv`` to its end, output in ``<name>.log``; fail with the log's tail, naming ``what``."""
        log_path = self.output_dir / f"{name}.log"
        with log_path.open("ab") as output:
            result = subprocess.run(
                argv,
                cwd=self.home,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=300,
                **(user or {}),
            )
        if result.returncode != 0:
            raise StackError(f"{what or argv[0]} failed:\n{_tail(log_path.read_text(errors='replace'))}")

    def _output_tail(self, managed: _Managed) -> str:
        # For error messages: the emulator's banner shows its API key, which no message repeats.
        text = _tail(managed.output())
        return text.replace(self.api_key, "***") if self.api_key else text

    def _check_alive(self) -> None:
        with self._lock:
            processes = list(self._processes.values())
        for managed in processes:
            if not managed.alive():
                raise StackError(
                    f"{managed.name} exited with {managed.popen.returncode}:\n{self._output_tail(managed)}"
                )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.config.health_timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(requests.RequestException, ValueError):
                response = self._session.get(f"{self.url}/api/v2/monitor/health", timeout=5)
                if response.ok:
                    health = response.json()
                    if all(health.get(key, {}).get("status") == "healthy" for key in HEALTH_KEYS):
                        return
            time.sleep(0.5)
        raise StackError(f"not healthy after {self.config.health_timeout:.0f} s: {health}")

    def _create_connection(self) -> None:
        emulator = urlsplit(self.emulator_url)
        body = {
            "connection_id": CONNECTION_ID,
            "conn_type": "akool",
            "description": "The local Akool emulator started by make airflow (tests/stack)",
            # Host, scheme and port in their own fields, as the README says: the UI's Test button sends the
            # stored port back, and Airflow 3.3.1-3.3.2 refuse to test a connection that has none.
            "host": emulator.hostname,
            "schema": emulator.scheme,
            "port": emulator.port,
            "password": self.api_key,
            # The emulator's clientId: the webhook receiver verifies callbacks with login and password.
            "login": EMULATOR_CLIENT_ID,
            # Every field of the form, the timeout too: Airflow 3.3's edit form shows only the extra
            # fields the stored extra has.
            "extra": json.dumps(
                {"auth_type": "api_key", "detect_url": f"{self.emulator_url}/detect", "timeout": 30}
            ),
        }
        # A kept home still has the connection of the last start, with its old port and key.
        self.api("DELETE", f"/connections/{CONNECTION_ID}", ok=(204, 404))
        self.api("POST", "/connections", json_body=body, ok=(201,))

    def _triggerer_jobs(self, alive_only: bool = False) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"job_type": "TriggererJob", "limit": 100}
        if alive_only:
            params["is_alive"] = "true"
        jobs: list[dict[str, Any]] = self.api("GET", "/jobs", params=params)["jobs"]
        return jobs

    @staticmethod
    def _signal_group(managed: _Managed, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(managed.pid, signum)


# --- Command line --------------------------------------------------------------------------------


#: The parts of a setting's name that mark a secret: written into airflow.cfg as a comment, not a value.
_SECRET_SETTING = re.compile(
    r"SECRET|PASSWORD(?!S_FILE)|FERNET|SQL_ALCHEMY_CONN|BROKER_URL|RESULT_BACKEND|TOKEN"
)
_SECRET_NOTE = "(a secret: set in each process's environment by tests/stack)"
_SETTING_ENV = re.compile(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)")
_SETTING_ARG = re.compile(r"([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)=(.*)", re.DOTALL)


def setting_env(assignment: str) -> tuple[str, str]:
    """
    Return the environment variable and value of a ``--set section.key=value``.

    :raises ValueError: naming ``--set`` and the form it takes.
    """
    match = _SETTING_ARG.fullmatch(assignment)
    if match is None:
        raise ValueError(
            f"--set takes section.key=value (letters, digits, _ in section and key), e.g. "
            f"--set akool.webhook_resume_settle=5; got {assignment!r}"
        )
    section, key, value = match.groups()
    return f"AIRFLOW__{section.upper()}__{key.upper()}", value


def write_settings_into_cfg(cfg: Path, env: dict[str, str]) -> None:
    """
    Write the ``AIRFLOW__SECTION__KEY`` settings of ``env`` into ``cfg``, where Airflow wrote its defaults.

    The processes read them from their environment, which wins over the file; written here too so that the
    file reads what is in force (it said ``webhook_receiver = False`` while the stack switched it on). A
    setting already in a section (set or commented out) is replaced in place, another one is added at the
    section's end, a missing section at the file's end. A secret is written as a comment that says where it
    comes from, never its value.
    """
    settings: dict[str, dict[str, str]] = {}
    for name, value in sorted(env.items()):
        match = _SETTING_ENV.fullmatch(name)
        if match is None:
            continue
        section, key = (part.lower() for part in match.groups())
        if _SECRET_SETTING.search(name):
            line = f"# {key} = {_SECRET_NOTE}"
        else:
            # configparser's interpolation: a literal % is written %%.
            line = f"{key} = {value.replace('%', '%%')}"
        settings.setdefault(section, {})[key] = line
    lines = cfg.read_text().splitlines() if cfg.exists() else []
    # Where each section's lines end (before its trailing blank lines), and where each of its keys is set.
    sections: dict[str, int] = {}
    where: dict[tuple[str, str], int] = {}
    section: str | None = None
    for index, line in enumerate(lines):
        header = re.fullmatch(r"\[([^\]]+)\]\s*", line)
        if header:
            section = header.group(1).strip().lower()
            sections[section] = index + 1
            continue
        if section is None:
            continue
        # A setting, not a comment; or a secret's note left by an earlier start.
        key = re.match(r"([A-Za-z0-9_]+)\s*=", line) or re.fullmatch(
            rf"# ([A-Za-z0-9_]+) = {re.escape(_SECRET_NOTE)}", line
        )
        if key:
            where[(section, key.group(1).lower())] = index
        if line.strip():
            sections[section] = index + 1
    additions: dict[int, list[str]] = {}
    for name, entries in settings.items():
        for key, line in entries.items():
            if (name, key) in where:
                lines[where[(name, key)]] = line
            elif name in sections:
                additions.setdefault(sections[name], []).append(line)
            else:
                additions.setdefault(len(lines), []).extend(["", f"[{name}]"])
                sections[name] = len(lines)  # added at the end: its other keys follow it
                additions[len(lines)].append(line)
    out: list[str] = []
    for index in range(len(lines) + 1):
        out.extend(additions.get(index, []))
        if index < len(lines):
            out.append(lines[index])
    cfg.write_text("\n".join(out) + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``make airflow``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.stack",
        description="Run Airflow (API server, scheduler, triggerer, DAG processor) and the Akool emulator "
        "on 127.0.0.1 with the example DAGs; Ctrl-C stops everything.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="AIRFLOW_HOME (default .airflow-stack or .airflow-stack-celery)",
    )
    parser.add_argument("--fresh", action="store_true", help="delete the home first (database, logs, login)")
    parser.add_argument("--port", type=int, default=8080, help="API server and UI port (0: any free port)")
    parser.add_argument("--emulator-port", type=int, default=8765, help="emulator port (0: any free port)")
    parser.add_argument("--dags-folder", type=Path, default=REPO_ROOT / "dags")
    defaults = StackConfig(home=Path())
    parser.add_argument("--queued-seconds", type=float, default=defaults.queued_seconds)
    parser.add_argument("--processing-seconds", type=float, default=defaults.processing_seconds)
    parser.add_argument("--video-processing-seconds", type=float, default=defaults.video_processing_seconds)
    parser.add_argument("--bg-processing-seconds", type=float, default=defaults.bg_processing_seconds)
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="an Airflow setting for every process of the stack, over the stack's own (repeatable), e.g. "
        "--set akool.webhook_resume_settle=5; the stack ignores AIRFLOW__* variables of your environment",
    )
    distributed = parser.add_argument_group(
        "distributed", "the engine teams run: PostgreSQL, Redis, CeleryExecutor, several triggerers"
    )
    distributed.add_argument(
        "--celery",
        action="store_true",
        help="run PostgreSQL, Redis, CeleryExecutor with --workers workers and --triggerers triggerers "
        "(home .airflow-stack-celery unless --home); apt-installs postgresql and redis-server if missing",
    )
    distributed.add_argument("--workers", type=int, default=defaults.celery_workers, help="Celery workers")
    distributed.add_argument(
        "--worker-concurrency", type=int, default=defaults.worker_concurrency, help="task slots per worker"
    )
    distributed.add_argument(
        "--triggerers", type=int, default=None, help="triggerers (2 with --celery, else 1)"
    )
    distributed.add_argument(
        "--install-deps",
        action="store_true",
        help="only install PostgreSQL and Redis with apt where missing, say what is missing, and exit",
    )
    return parser


def banner(stack: AirflowStack, dags: Sequence[str]) -> str:
    """What ``make airflow`` prints once the stack is up: where everything is and how to log in."""
    lines = [
        "",
        f"Airflow UI and REST API:  {stack.url}",
        f"  login:                  {stack.username} / {stack.password}",
        f"Akool emulator:           {stack.emulator_url}  (connection '{CONNECTION_ID}', ledger at "
        f"{stack.emulator_url}/_emulator/ledger)",
        # The emulator's own key, not a real one: a connection added by hand in the UI needs it. Kept in the
        # home, so such a connection outlives a restart; --fresh makes a new one.
        f"  API key:                {stack.api_key}  (the emulator's; kept in {stack.secrets_file})",
        f"AIRFLOW_HOME:             {stack.home}",
        *(
            [
                f"Executor:                 CeleryExecutor, workers {', '.join(stack.config.worker_names())} "
                f"({stack.config.worker_concurrency} slots each)",
                "Triggerers:               "
                + ", ".join(f"{name} (job {job})" for name, job in stack.triggerer_jobs.items()),
                f"PostgreSQL:               {LOOPBACK}:{stack.postgres_port} (user {POSTGRES_USER}, "
                f"password in {stack.secrets_file})",
                f"Redis (Celery broker):    {LOOPBACK}:{stack.redis_port}",
            ]
            if stack.config.celery
            else []
        ),
        f"DAGs loaded so far:       {', '.join(dags) or '(none yet; the DAG processor is still parsing)'}",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)


def _print_banner(stack: AirflowStack) -> None:
    dags = sorted(dag["dag_id"] for dag in stack.api("GET", "/dags", params={"limit": 1000})["dags"])
    # print, not log: the login and the key are for the person at the terminal, not for a log file.
    print(banner(stack, dags), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stack in the foreground until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.install_deps:
        missing = install_distributed_packages()
        if missing:
            log.error("Still missing (not root, or no apt): %s", " ".join(missing))
            return 1
        log.info(
            "PostgreSQL (%s) and redis-server (%s) are installed",
            postgres_bin_dir(),
            shutil.which("redis-server"),
        )
        return 0
    home = args.home
    if home is None:
        home = REPO_ROOT / (".airflow-stack-celery" if args.celery else ".airflow-stack")
    if args.fresh and home.exists():
        shutil.rmtree(home)
    for name in ("workers", "worker_concurrency", "triggerers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}")
    try:
        extra_env = dict(setting_env(assignment) for assignment in args.settings)
    except ValueError as error:
        parser.error(str(error))
    config = StackConfig(
        home=home,
        extra_env=extra_env,
        celery=args.celery,
        celery_workers=args.workers,
        worker_concurrency=args.worker_concurrency,
        triggerers=args.triggerers or (2 if args.celery else 1),
        dags_folder=args.dags_folder,
        api_port=args.port,
        emulator_port=args.emulator_port,
        fall_back_to_free_ports=True,
        queued_seconds=args.queued_seconds,
        processing_seconds=args.processing_seconds,
        video_processing_seconds=args.video_processing_seconds,
        bg_processing_seconds=args.bg_processing_seconds,
    )

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGTERM (kill, a CI runner) takes the same way out as Ctrl-C, also in the middle of start().
    signal.signal(signal.SIGTERM, interrupt)
    stack = AirflowStack(config)
    # How long it takes is measured, and stated in one place only.
    log.info(
        "Starting the Airflow stack in %s (how long that takes: docs/airflow-stack.md, '%s')",
        config.home,
        FIGURES_SECTION,
    )
    try:
        stack.start()
        _print_banner(stack)
        while True:
            time.sleep(2)
            stack._check_alive()
    except KeyboardInterrupt:
        return 0
    except StackError as error:
        log.error("The stack stopped: %s", error)
        return 1
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("Stopping every process of the stack")
        stack.stop()
        log.info("Stopped")


if __name__ == "__main__":
    sys.exit(main())
