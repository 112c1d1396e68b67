"""
The end-to-end fixtures: one real Airflow stack per session (tests/stack/airflow_stack.py), a gate that holds
the emulated Akool jobs until the test lets them finish, and a watcher that records every state a task
instance went through.

Why a gate: whether a task defers depends on whether its job is still running when the task checks it
once. Holding every new job in "processing" until all the Akool tasks that could wait for it are deferred
makes that certain rather than a race with the emulator's clock, and it lets the tests keep jobs running
while they kill the triggerer or mark a task failed.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

from tests.stack.airflow_stack import AirflowStack, StackConfig
from tests.support.ledger import SUBMIT_ENDPOINTS

REPO_ROOT = Path(__file__).resolve().parents[2]


#: The example DAGs every build must have; any other DAG in dags/ whose id starts with "akool_" is run too.
REQUIRED_EXAMPLE_DAGS = (
    "akool_image_reage",
    "akool_video_reage",
    "akool_batch_reage",
    "akool_background_change",
)
EXAMPLE_DAG_PREFIX = "akool_"
#: The tag of example DAGs that wait for a person's answer (a human-in-the-loop step).
WAITS_FOR_A_PERSON = "human-in-the-loop"
IMAGE_REAGE_DAG = REQUIRED_EXAMPLE_DAGS[0]


def _akool_classes(base: type) -> frozenset[str]:
    """The names of ``base`` and its subclasses among the operators and sensors the provider declares."""
    import importlib

    from airflow_provider_akool.get_provider_info import get_provider_info

    info = get_provider_info()
    for entry in (*info["operators"], *info["sensors"]):
        for module in entry["python-modules"]:
            importlib.import_module(module)
    found, todo = set(), [base]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo += cls.__subclasses__()
    # Shared bases (_AkoolReageOperator, AkoolResultIdsSensorBase) are no task's operator.
    return frozenset(name for name in found if not name.startswith("_") and not name.endswith("Base"))


def _job_classes() -> tuple[frozenset[str], frozenset[str]]:
    from airflow_provider_akool.operators.base import AkoolJobOperator
    from airflow_provider_akool.sensors.base import AkoolJobSensor

    submitting = _akool_classes(AkoolJobOperator) - {"AkoolJobOperator"}
    return submitting, submitting | (_akool_classes(AkoolJobSensor) - {"AkoolJobSensor"})


#: Submitting operators (exactly one submission each), and every operator and sensor that waits for an
#: Akool job (deferrable, it must wait in the triggerer): from the package, so a new kind is counted.
SUBMITTING_OPERATORS, WAITING_OPERATORS = _job_classes()

FINISHED_RUN_STATES = frozenset({"success", "failed"})
# Task instance states in which nothing is going to happen without an outside event.
SETTLED_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed", "deferred"})
DONE_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
RUNNING, SUCCESS = 2, 3

#: How long the gate holds jobs at most: a task that waits in its worker (not deferred) never lets the
#: runs settle, and after this the gate lets go so that the test fails on the missing deferral, not a hang.
MAX_HOLD_SECONDS = 90.0
#: The runs must stay settled this long before the gate lets go: the scheduler may not have scheduled a
#: task whose upstream just finished (it looks about once a second).
SETTLE_SECONDS = 2.0
RUN_TIMEOUT = 240.0


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120.0, every: float = 0.5) -> T:
    """
    Poll ``probe`` until it returns a true value, and return it; None, False, 0 and empty mean not yet.

    A count of 0 is nothing found: taking any value but None and False as found let the distributed crash
    scenario release its job the moment the retry was seen running, before the retry had asked about it.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(every)


def ti_key(ti: dict[str, Any]) -> str:
    """``task_id`` or ``task_id[map_index]`` for a mapped task instance."""
    map_index = ti.get("map_index", -1)
    return ti["task_id"] if map_index in (-1, None) else f"{ti['task_id']}[{map_index}]"


def ti_path(ti: dict[str, Any]) -> str:
    """The REST path of a task instance (without the map index)."""
    return (
        f"/dags/{quote(ti['dag_id'])}/dagRuns/{quote(ti['dag_run_id'], safe='')}"
        f"/taskInstances/{quote(ti['task_id'])}"
    )


#: The DAG folders of the e2e modules, all loaded by the one stack they share (a stack start is ~40 s of
#: two cores, on each Airflow CI runs): the examples, and the DAGs of test_crash.py and test_webhooks.py.
DAG_FOLDERS = {
    "examples": REPO_ROOT / "dags",
    "crash": Path(__file__).resolve().parent / "crash_dags",
    "webhook": Path(__file__).resolve().parent / "webhook_dags",
}


def shared_dags_folder(home: Path) -> Path:
    """A DAGs folder of links to :data:`DAG_FOLDERS` (Airflow follows links when it looks for DAG files)."""
    folder = home / "dags"
    folder.mkdir(parents=True)
    for name, target in DAG_FOLDERS.items():
        (folder / name).symlink_to(target, target_is_directory=True)
    return folder


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """
    The whole stack, started once for the e2e modules and stopped after the last of them, whatever happened.

    Every module of tests/e2e/ (the distributed suite apart) shares it, each counting what it caused in the
    emulator's ledger from a snapshot taken before (runs of one module are over before the next starts).
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # SIGTERM (a CI runner giving up) ends the session like Ctrl-C, so fixtures tear down and the
        # stack's process groups are stopped rather than orphaned.
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    home = tmp_path_factory.mktemp("airflow-stack")
    config = StackConfig(
        home=home,
        dags_folder=shared_dags_folder(tmp_path_factory.mktemp("airflow-stack-dags")),
        # Fallback timings only: the gate holds and releases jobs itself. Queued long enough that no
        # job finishes between a submission and the gate seeing it.
        queued_seconds=3.0,
        processing_seconds=3.0,
        video_processing_seconds=4.0,
        bg_processing_seconds=3.0,
        parallelism=6,
        demo_poll_interval=1.0,
    )
    try:
        with AirflowStack(config) as running:
            yield running
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="package")
def example_dag_ids(stack: AirflowStack) -> list[str]:
    """Every example DAG the stack loaded; fails if a required one is missing or a file did not import."""
    stack.wait_for_dags(REQUIRED_EXAMPLE_DAGS)
    errors = stack.api("GET", "/importErrors")["import_errors"]
    assert not errors, f"DAG files failed to import: {json.dumps(errors, indent=1)}"
    dags = stack.api("GET", "/dags", params={"limit": 1000})["dags"]
    # A DAG that waits for a person runs in its own test (test_face_swap_review), which answers it.
    return sorted(
        dag["dag_id"]
        for dag in dags
        if dag["dag_id"].startswith(EXAMPLE_DAG_PREFIX)
        and WAITS_FOR_A_PERSON not in {tag["name"] for tag in dag.get("tags") or ()}
    )


class JobGate:
    """
    Hold every Akool job submitted from now on in "processing" until :meth:`release`.

    A thread pins each new job (seen in the emulator's ledger) to status 2 right away; the emulator's
    queued time is long enough that no job finishes before that.
    """

    def __init__(self, stack: AirflowStack) -> None:
        self._stack = stack
        self._lock = threading.Lock()
        self._known: set[str] = set(stack.ledger()["jobs"])
        self.held: dict[str, float] = {}
        self.released: set[str] = set()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="akool-job-gate", daemon=True)

    def __enter__(self) -> JobGate:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        # Never leave a job pinned: a run still waiting would otherwise outlive the test.
        self.release()

    def _loop(self) -> None:
        while not self._stop.wait(0.15):
            try:
                self.pin_new_jobs()
            except BaseException as error:  # surfaced in the test's thread by check()
                self._error = error
                return

    def check(self) -> None:
        """Raise what went wrong in the gate's thread, if anything."""
        if self._error is not None:
            raise AssertionError(f"the job gate failed: {self._error!r}") from self._error

    def pin_new_jobs(self) -> None:
        """Pin every job not seen before that is still queued or processing."""
        with self._lock:
            for job_id, job in self._stack.ledger()["jobs"].items():
                if job_id in self._known:
                    continue
                self._known.add(job_id)
                if job["status"] in (1, RUNNING):
                    self._stack.set_job_status(job_id, RUNNING)
                    self.held[job_id] = time.monotonic()

    def oldest_hold(self) -> float:
        """Seconds the longest-held job has been held (0 if none)."""
        with self._lock:
            return time.monotonic() - min(self.held.values()) if self.held else 0.0

    def release(self, only: Iterable[str] | None = None) -> list[str]:
        """Let every held job (or those of ``only``) succeed, but cancelled ones; return their ids."""
        with self._lock:
            ids = list(self.held) if only is None else [job_id for job_id in only if job_id in self.held]
            for job_id in ids:
                del self.held[job_id]
            if not ids:
                return []
            jobs = self._stack.ledger()["jobs"]
            for job_id in ids:
                if not jobs[job_id]["cancelled"] and jobs[job_id]["status"] == RUNNING:
                    self._stack.set_job_status(job_id, SUCCESS)
            self.released.update(ids)
        return ids


@dataclass
class Run:
    """A DAG run started by a test, with every state each of its task instances was seen in."""

    dag_id: str
    run_id: str
    state: str = "queued"
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, list[str | None]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES

    def ti(self, key: str) -> dict[str, Any]:
        """The task instance ``task_id`` (or ``task_id[map_index]``) as last seen."""
        for ti in self.task_instances:
            if ti_key(ti) == key:
                return ti
        raise KeyError(f"{self.dag_id} {self.run_id} has no task instance {key}")


class RunWatcher:
    """Start runs, record every state their task instances pass through, and drive the job gate."""

    def __init__(self, stack: AirflowStack, gate: JobGate) -> None:
        self.stack = stack
        self.gate = gate
        self.runs: list[Run] = []
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}

    def start(self, dag_id: str) -> Run:
        """Trigger ``dag_id`` now."""
        run = Run(dag_id, self.stack.trigger_dag(dag_id))
        self.runs.append(run)
        return run

    def tasks(self, dag_id: str) -> dict[str, dict[str, Any]]:
        """The DAG's tasks by id (operator name, downstream ids), from the REST API, cached."""
        if dag_id not in self._tasks:
            tasks = self.stack.api("GET", f"/dags/{quote(dag_id)}/tasks")["tasks"]
            self._tasks[dag_id] = {task["task_id"]: task for task in tasks}
        return self._tasks[dag_id]

    def operator(self, run: Run, ti: dict[str, Any]) -> str:
        """The operator class name of a task instance."""
        return str(self.tasks(run.dag_id)[ti["task_id"]].get("operator_name") or ti.get("operator") or "")

    def poll(self) -> None:
        """Refresh every unfinished run and record the states seen."""
        self.gate.check()
        for run in self.runs:
            if run.finished:
                continue
            run.task_instances = self.stack.task_instances(run.dag_id, run.run_id)
            for ti in run.task_instances:
                states = run.seen.setdefault(ti_key(ti), [])
                if not states or states[-1] != ti["state"]:
                    states.append(ti["state"])
            # Read after the task instances: a run seen finished has its final task states recorded.
            run.state = str(self.stack.dag_run(run.dag_id, run.run_id)["state"])
            if run.finished:
                run.task_instances = self.stack.task_instances(run.dag_id, run.run_id)

    def _pending(self, run: Run, ti: dict[str, Any]) -> bool:
        # A task with no state yet whose upstream is done is about to be scheduled: not settled.
        if ti["state"] is not None:
            return False
        tasks = self.tasks(run.dag_id)
        upstream = {
            tid for tid, task in tasks.items() if ti["task_id"] in task.get("downstream_task_ids", [])
        }
        states = [other["state"] for other in run.task_instances if other["task_id"] in upstream]
        return all(state in DONE_TI_STATES for state in states)

    def deferrals_reported(self) -> bool:
        """
        Whether the scheduler has processed the worker exit of every deferred task instance.

        The worker that deferred a task reports its exit up to ``[workers] min_heartbeat_interval`` (5 s)
        later. Airflow 3.1 (seen on 3.1.8) fails a task whose trigger fired before that report arrived (the
        stale "success" of the old worker meets a running task); 3.3 ignores it. Jobs are released only after
        the scheduler logged "TaskInstance Finished ... state=deferred" for each, so the tests pass on both.
        """
        deferred = [(run, ti) for run in self.runs for ti in run.task_instances if ti["state"] == "deferred"]
        if not deferred:
            return True
        scheduler_output = (self.stack.output_dir / "scheduler.log").read_text(errors="replace")
        return all(
            re.search(
                re.escape(
                    f"TaskInstance Finished: dag_id={run.dag_id}, task_id={ti['task_id']}, "
                    f"run_id={run.run_id}, map_index={ti.get('map_index', -1)},"
                )
                + r"[^\n]*state=deferred,",
                scheduler_output,
            )
            for run, ti in deferred
        )

    def settled(self) -> bool:
        """Whether every unfinished run waits only for deferred tasks."""
        for run in self.runs:
            if run.finished:
                continue
            for ti in run.task_instances:
                if ti["state"] not in SETTLED_TI_STATES and (
                    ti["state"] is not None or self._pending(run, ti)
                ):
                    return False
        return True

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = RUN_TIMEOUT) -> None:
        """Poll until ``condition()`` holds; the gate keeps holding."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting until {what}: {self.describe()}"
                )
            time.sleep(0.4)

    def finish(self, timeout: float = RUN_TIMEOUT) -> None:
        """
        Drive every run to its end: let the held jobs finish each time the runs have settled (every task
        that could wait for them is deferred), or when they were held for :data:`MAX_HOLD_SECONDS`.
        """
        deadline = time.monotonic() + timeout
        settled_since: float | None = None
        while True:
            self.poll()
            if all(run.finished for run in self.runs):
                return
            now = time.monotonic()
            settled_since = (settled_since or now) if self.settled() else None
            if self.gate.held and (
                (
                    settled_since is not None
                    and now - settled_since >= SETTLE_SECONDS
                    and self.deferrals_reported()
                )
                or self.gate.oldest_hold() > MAX_HOLD_SECONDS
            ):
                self.gate.release()
                settled_since = None
            if now > deadline:
                raise AssertionError(f"runs unfinished after {timeout:.0f} s: {self.describe()}")
            time.sleep(0.4)

    def describe(self) -> str:
        """Every run and the states its task instances went through, for failure messages."""
        return "; ".join(
            f"{run.dag_id} {run.run_id} [{run.state}] "
            + ", ".join(f"{key}: {'>'.join(str(s) for s in states)}" for key, states in run.seen.items())
            for run in self.runs
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat a skip of the browser tests at the very end, where nobody can miss it."""
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "BROWSER TESTS SKIPPED" in reason:
            terminalreporter.write_sep("!", reason.removeprefix("Skipped: "), red=True, bold=True)
            return


@dataclass
class TaskFacts:
    """What the REST API says about one finished task instance."""

    ti: dict[str, Any]
    operator: str
    states_seen: list[str | None]
    return_value: Any
    xcom: dict[str, Any]
    links: dict[str, Any]
    log: str


def xcom_value(stack: AirflowStack, ti: dict[str, Any], key: str) -> Any:
    """One XCom of a task instance through the REST API, or None if it has none."""
    reply = stack.api(
        "GET",
        f"{ti_path(ti)}/xcomEntries/{quote(key)}",
        params={"map_index": ti.get("map_index", -1)},
        ok=(200, 404),
    )
    if reply is None or "value" not in reply:
        return None
    value = reply["value"]
    # The REST API returns XCom values as stored; JSON documents may come back as strings.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def task_facts(watcher: RunWatcher, run: Run) -> dict[str, TaskFacts]:
    """Facts about every task instance of a finished run, by :func:`ti_key`."""
    stack = watcher.stack
    facts = {}
    for ti in run.task_instances:
        links = stack.api(
            "GET", f"{ti_path(ti)}/links", params={"map_index": ti.get("map_index", -1)}, ok=(200, 404)
        )
        log = "\n".join(stack.task_log(ti, number) for number in range(1, int(ti["try_number"] or 0) + 1))
        facts[ti_key(ti)] = TaskFacts(
            ti=ti,
            operator=watcher.operator(run, ti),
            states_seen=run.seen.get(ti_key(ti), []),
            return_value=xcom_value(stack, ti, "return_value"),
            xcom={
                key: xcom_value(stack, ti, key) for key in ("akool_id", "akool_job_id", "akool_result_url")
            },
            links=(links or {}).get("extra_links", {}),
            log=log,
        )
    return facts


def waited_for_a_job(facts: TaskFacts) -> bool:
    """Whether the task waited for Akool jobs to finish (a submit-only task returns a running status)."""
    if facts.operator not in WAITING_OPERATORS:
        return False
    results = facts.return_value if isinstance(facts.return_value, list) else [facts.return_value]
    return bool(results) and all(
        isinstance(result, dict) and result.get("status") in ("success", "failed") for result in results
    )


def trigger_log_files(stack: AirflowStack, ti: dict[str, Any]) -> dict[int, str]:
    """The trigger logs of a task instance by triggerer job id (``attempt=N.log.trigger.<job id>.log``)."""
    task_dir = (
        stack.home
        / "logs"
        / f"dag_id={ti['dag_id']}"
        / f"run_id={ti['dag_run_id']}"
        / f"task_id={ti['task_id']}"
    )
    map_index = ti.get("map_index", -1)
    if map_index not in (-1, None):
        task_dir = task_dir / f"map_index={map_index}"
    found = {}
    for path in task_dir.glob("attempt=*.log.trigger.*.log"):
        found[int(path.name.rsplit(".", 2)[-2])] = path.read_text(errors="replace")
    return found


@dataclass
class ExampleRuns:
    """One run of every example DAG, driven to its end, with the facts of each task instance."""

    watcher: RunWatcher
    runs: dict[str, Run]
    facts: dict[str, dict[str, TaskFacts]]
    submissions: dict[str, int]


@pytest.fixture(scope="package")
def example_runs(stack: AirflowStack, example_dag_ids: list[str]) -> ExampleRuns:
    """Run every example DAG once, all at the same time, through the REST API, and wait for the end."""
    before = stack.ledger()["counts"]
    with JobGate(stack) as gate:
        watcher = RunWatcher(stack, gate)
        runs = {dag_id: watcher.start(dag_id) for dag_id in example_dag_ids}
        watcher.finish()
    after = stack.ledger()["counts"]
    return ExampleRuns(
        watcher=watcher,
        runs=runs,
        facts={dag_id: task_facts(watcher, run) for dag_id, run in runs.items()},
        submissions={name: after[name] - before[name] for name in SUBMIT_ENDPOINTS},
    )
