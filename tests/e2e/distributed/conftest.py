"""
The distributed end-to-end suite's stack and scenario (``pytest -m distributed``).

One ``--celery`` stack (tests/stack/airflow_stack.py: PostgreSQL, Redis, CeleryExecutor with two workers, two
triggerers) for the package. Two cores cannot afford a 200-task run per check, so one scenario drives three
runs at once and does every disruption while the tasks wait, recording what it saw; each test then judges
one guarantee from the record:

1. start a mapped batch of :data:`BATCH` deferrable reages, a single deferrable reage and a reage that waits
   in its Celery worker; the gate holds every Akool job "processing";
2. once every batch task is deferred in a running trigger: count ``listbyids`` over a quiet window;
3. SIGKILL the Celery worker (its whole process tree) that runs the waiting reage; start it again;
4. mark the single reage failed through the REST API;
5. restart PostgreSQL;
6. stall (SIGSTOP) the triggerer that holds most batch triggers until the other took every trigger over,
   then let it go on (SIGCONT): it finds its triggers gone;
7. SIGKILL the other triggerer, which holds every trigger now; wait until the first took them all back;
8. let the crash retry's job finish, then every job; wait for the end of every run.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import pytest
import requests

from tests.e2e.conftest import JobGate, Run, RunWatcher, trigger_log_files, wait_for, xcom_value
from tests.stack.airflow_stack import AirflowStack, StackConfig, missing_distributed_packages
from tests.stack.canary import canary, read
from tests.support.airflow_version import AIRFLOW_VERSION

DAGS = Path(__file__).resolve().parent / "dags"
BATCH_DAG = "distributed_reage_batch"
SINGLE_DAG = "distributed_reage_single"
CRASH_DAG = "distributed_crash_resume"
BATCH = int(os.environ.get("AKOOL_DISTRIBUTED_BATCH", "200"))
#: The batch's poll interval; the quiet window counts rounds on this grid.
POLL_INTERVAL = 4.0
#: ids per listbyids request of the shared poller (the provider's default).
LISTBYIDS_BATCH = 50
QUIET_WINDOW = 12.0
HEALTH_CHECK_THRESHOLD = 10.0
TASK_HEARTBEAT_TIMEOUT = 30.0
PROCESSING, SUCCESS = 2, 3
SKIP_BANNER = "DISTRIBUTED TESTS SKIPPED"
BLOCKED_WARNING = "Triggerer's async thread was blocked"
#: What Airflow's triggerer supervisor logs when its trigger runner sent nothing for a while (the runner's
#: loop, or the supervisor itself, was blocked) and when its heartbeat comes back after the health threshold.
RUNNER_SILENT = "event loop appears deadlocked"
HEARTBEAT_RECOVERED = "Heartbeat recovered after"
#: Task instances out of ``deferred`` whose trigger_id every triggerer's clean-up still has to clear.
STALE_TRIGGER_REFERENCES = (
    "SELECT count(*) FROM task_instance WHERE state <> 'deferred' AND trigger_id IS NOT NULL"
)

#: PostgreSQL's log as it was once the stack had started, before the scenario restarts PostgreSQL.
POSTGRES_START_LOG = pytest.StashKey[str]()


@pytest.fixture(scope="package")
def dstack(request: pytest.FixtureRequest) -> Iterator[AirflowStack]:
    """The ``--celery`` stack, stopped after the last distributed test whatever happened."""
    missing = missing_distributed_packages()
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        from tests.stack.airflow_stack import install_distributed_packages

        missing = install_distributed_packages()
    if missing:
        pytest.skip(f"{SKIP_BANNER}: {' and '.join(missing)} missing and apt-get cannot install them here")

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    # Not under pytest's basetemp: PostgreSQL runs as the postgres user, who cannot enter /tmp/pytest-of-root.
    home = Path(tempfile.mkdtemp(prefix="akool-distributed-"))
    home.chmod(0o711)
    config = StackConfig(
        home=home,
        dags_folder=DAGS,
        celery=True,
        celery_workers=2,
        worker_concurrency=4,
        triggerers=2,
        # Fallback timings only: the gate holds every job and lets it finish.
        queued_seconds=60.0,
        processing_seconds=3.0,
        triggerer_heartbeat_seconds=1.0,
        triggerer_health_check_threshold=HEALTH_CHECK_THRESHOLD,
        task_heartbeat_timeout=TASK_HEARTBEAT_TIMEOUT,
        extra_env={
            "AKOOL_DISTRIBUTED_BATCH": str(BATCH),
            "AKOOL_DISTRIBUTED_POLL_INTERVAL": f"{POLL_INTERVAL:g}",
            # 200 task instances in one listing (Airflow's default page limit is 100).
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "1000",
            # Look for lost tasks every 5 s rather than 10 (the killed worker's task).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A scheduler started again after the PostgreSQL restart adopts the old one's running tasks
            # (the killed worker's among them) within seconds of its death being noticed, not 300 s.
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
        },
    )
    passed = False
    failed_before = request.session.testsfailed
    try:
        with AirflowStack(config) as stack:
            stack.wait_for_dags([BATCH_DAG, SINGLE_DAG, CRASH_DAG])
            request.config.stash[POSTGRES_START_LOG] = (stack.output_dir / "postgres.log").read_text(
                errors="replace"
            )
            yield stack
            passed = request.session.testsfailed == failed_before
    finally:
        signal.signal(signal.SIGTERM, previous)
        if passed:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"\nThe distributed stack's home is kept for a look: {home}")


class SelectiveGate(JobGate):
    """The e2e job gate, polling the ledger less often (it is large here) and able to let one job go."""

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.pin_new_jobs()
            except BaseException as error:
                self._error = error
                return

    def release_one(self, job_id: str) -> None:
        """Let ``job_id`` succeed now, keeping the others held."""
        with self._lock:
            self.held.pop(job_id, None)
            self._stack.set_job_status(job_id, SUCCESS)
            self.released.add(job_id)


@dataclass
class Scenario:
    """What the scenario saw; the tests judge it."""

    stack: AirflowStack
    watcher: RunWatcher
    batch: Run
    single: Run
    crash: Run
    ledger_before: dict[str, Any]
    ledger_after: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: TriggererJob id of each batch task instance's trigger once all were deferred (by map index).
    triggerer_of: dict[int, int] = field(default_factory=dict)
    triggerer_jobs: dict[str, int] = field(default_factory=dict)
    batch_ids: dict[int, str] = field(default_factory=dict)
    quiet_listbyids: int = 0
    quiet_seconds: float = 0.0
    single_akool_id: str = ""
    single_job_id: str = ""
    crash_first_id: str = ""
    crash_worker: str = ""
    killed_triggerer: str = ""
    takeover_seconds: float = 0.0
    stalled_triggerer: str = ""
    stall_takeover_seconds: float = 0.0
    #: Batch map indexes whose trigger the stalled triggerer held when it stopped.
    stalled_held: list[int] = field(default_factory=list)
    #: The stalled triggerer's trigger log of each of those, once it stopped its copy (a triggerer that
    #: picks a trigger up again rewrites the file).
    stalled_logs: dict[int, str] = field(default_factory=dict)
    #: When the stall began and ended (epoch seconds).
    stall_window: tuple[float, float] = (0.0, 0.0)
    #: When a triggerer was SIGKILLed (epoch seconds).
    triggerer_killed_at: float = 0.0
    #: When each triggerer (job id) started its first trigger (epoch), read before any log was rewritten.
    first_trigger_started: dict[int, float] = field(default_factory=dict)
    postgres_down_seconds: float = 0.0
    #: Components that exited when PostgreSQL restarted (Airflow's behaviour) and were started again.
    restarted_after_postgres: list[str] = field(default_factory=list)
    postgres_pids: tuple[int, int] = (0, 0)
    events: list[str] = field(default_factory=list)
    #: The canary's late wake-ups over the whole scenario (tests/stack/canary.py): when the machine was busy.
    machine_late: list[tuple[float, float]] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        print(f"[distributed] {text}", flush=True)


def _deferred_in_a_trigger(run: Run) -> bool:
    return bool(run.task_instances) and all(
        ti["state"] == "deferred" and (ti.get("triggerer_job") or {}).get("id") is not None
        for ti in run.task_instances
    )


def _task_process_worker(stack: AirflowStack, ti: dict[str, Any]) -> str | None:
    """The Celery worker (component name) whose process tree runs the task instance ``ti``."""
    for name in stack.config.worker_names():
        with contextlib.suppress(psutil.NoSuchProcess, KeyError):
            for proc in psutil.Process(stack.pid(name)).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    if str(ti["id"]) in " ".join(proc.cmdline()):
                        return name
    return None


def listbyids_between(ledger: dict[str, Any], ids: set[str], start: float, end: float) -> int:
    """``listbyids`` requests sent between ``start`` and ``end`` (epoch) that asked about any of ``ids``."""
    requests_ = [entry for entry in ledger["requests"] if entry["endpoint"] == "listbyids"]
    asked = ledger["listbyids_ids"]
    assert len(requests_) == len(asked), "the ledger dropped entries: raise its MAX_ENTRIES"
    return sum(
        1
        for entry, batch in zip(requests_, asked, strict=True)
        if start <= entry["at"] <= end and ids.intersection(batch)
    )


def single_triggerer_rounds(seconds: float, interval: float) -> int:
    """Rounds one shared poller makes in ``seconds`` on a grid of ``interval``: one per grid point."""
    return math.floor(seconds / interval) + 1


def _run_scenario(stack: AirflowStack) -> Scenario:
    started = time.monotonic()
    ledger_before = stack.ledger()
    gate = SelectiveGate(stack)
    with gate:
        watcher = RunWatcher(stack, gate)
        scenario = Scenario(
            stack=stack,
            watcher=watcher,
            crash=watcher.start(CRASH_DAG),
            single=watcher.start(SINGLE_DAG),
            batch=watcher.start(BATCH_DAG),
            ledger_before=ledger_before,
        )
        scenario.triggerer_jobs = dict(stack.triggerer_jobs)
        batch, single, crash = scenario.batch, scenario.single, scenario.crash
        scenario.note(f"started {BATCH} batch reages, the single reage and the crash reage")

        # 1. Every batch task deferred in a trigger that runs; the crash reage waits in its worker.
        def all_waiting() -> bool:
            crash_ti = crash.task_instances[0] if crash.task_instances else {}
            return (
                len(batch.task_instances) == BATCH
                and _deferred_in_a_trigger(batch)
                and _deferred_in_a_trigger(single)
                and crash_ti.get("state") == "running"
                and bool(xcom_value(stack, crash_ti, "akool_id"))
            )

        watcher.wait_until(all_waiting, "every reage waits (batch and single deferred, crash running)", 600)
        scenario.timings["all deferred"] = time.monotonic() - started
        scenario.triggerer_of = {
            int(ti["map_index"]): int(ti["triggerer_job"]["id"]) for ti in batch.task_instances
        }
        scenario.note(f"all deferred after {scenario.timings['all deferred']:.0f} s: {scenario.triggerer_of}")
        scenario.crash_first_id = str(xcom_value(stack, crash.task_instances[0], "akool_id"))
        scenario.first_trigger_started = {
            job: first_trigger_start(stack, job) for job in stack.triggerer_jobs.values()
        }

        # 2. A quiet window: the youngest trigger is two intervals old, nothing is disturbed.
        time.sleep(2 * POLL_INTERVAL)
        window_start = time.time()
        time.sleep(QUIET_WINDOW)
        window_end = time.time()
        batch_akool_ids = {
            int(ti["map_index"]): str(xcom_value(stack, ti, "akool_id")) for ti in batch.task_instances
        }
        scenario.batch_ids = batch_akool_ids
        scenario.quiet_listbyids = listbyids_between(
            stack.ledger(), set(batch_akool_ids.values()), window_start, window_end
        )
        scenario.quiet_seconds = window_end - window_start
        scenario.note(f"{scenario.quiet_listbyids} listbyids requests in {scenario.quiet_seconds:.1f} s")

        # 3. SIGKILL the Celery worker that runs the waiting (not deferred) reage, as the OOM killer would.
        crash_ti = crash.task_instances[0]
        scenario.crash_worker = wait_for(
            "the crash reage's worker is found", lambda: _task_process_worker(stack, crash_ti)
        )
        # Every other reage has submitted (all are deferred): from here on, only a retry that pays for a
        # second crash job would submit.
        submissions_at_kill = int(stack.ledger()["counts"]["imgreage"])
        killed_at = time.monotonic()
        stack.kill_component(scenario.crash_worker)
        scenario.note(f"SIGKILLed {scenario.crash_worker} while it ran the crash reage (try 1)")
        stack.start_component(scenario.crash_worker)
        scenario.note(f"started {scenario.crash_worker} again")

        # 4. A user marks the deferred single reage failed.
        single_ti = single.task_instances[0]
        wait_for(
            "the single reage's trigger runs",
            lambda: any("starting" in text for text in trigger_log_files(stack, single_ti).values()),
        )
        scenario.single_akool_id = str(xcom_value(stack, single_ti, "akool_id"))
        scenario.single_job_id = str(xcom_value(stack, single_ti, "akool_job_id"))
        stack.api(
            "PATCH",
            f"/dags/{SINGLE_DAG}/dagRuns/{single.run_id}/taskInstances/reage",
            json_body={"new_state": "failed"},
        )
        scenario.note("marked the single reage failed through the REST API")

        # 5. PostgreSQL restarts while everything waits.
        old_pid = stack.pid("postgres")
        scenario.postgres_down_seconds = stack.restart_postgres()
        scenario.postgres_pids = (old_pid, stack.pid("postgres"))
        postgres_back = time.time()
        scenario.note(f"restarted PostgreSQL: down {scenario.postgres_down_seconds:.1f} s")
        wait_for("every component is healthy again", lambda: _healthy(stack), timeout=120)
        # Airflow's, not the provider's: a component whose loop uses a connection while PostgreSQL shuts down
        # can exit with OperationalError (seen: a triggerer from Trigger.assign_unassigned or
        # Trigger.clean_unused, the scheduler from its pool query). The health check passes meanwhile (it
        # reads heartbeats up to 30 s old, and the other triggerer's), and a triggerer exits only after its
        # triggers' clean-up, ~10 s later: checked at once, the stall below picked a dying triggerer and the
        # kill took the only one left; a dead scheduler never failed the killed worker's task. So wait until
        # each of them heartbeated since PostgreSQL came back (its loop survived) or exited, and start the
        # exited ones again, as a deployment's process manager would.
        jobs = [*JOB_TYPES, *stack.config.triggerer_names()]
        wait_for(
            "every scheduler, DAG processor and triggerer heartbeated since PostgreSQL came back, or exited",
            lambda: _survived_or_exited(stack, jobs, postgres_back),
            timeout=120,
        )
        exited = [name for name in jobs if not stack.component_alive(name)]
        restarted_at = time.time()
        for name in exited:
            stack.kill_component(name)
            if name in JOB_TYPES:
                stack.start_component(name)
            else:
                stack.start_triggerer(name)  # returns once its new TriggererJob heartbeats
            scenario.restarted_after_postgres.append(name)
            scenario.note(f"{name} exited when PostgreSQL restarted (Airflow's); started it again")
        if exited:
            wait_for(
                f"{' and '.join(exited)} started again heartbeat",
                lambda: set(exited) <= _heartbeated_since(stack, restarted_at),
                timeout=120,
            )

        # 6. Stall the triggerer with most batch triggers (SIGSTOP, as a long GC pause or a starved VM would)
        #    until the other one took its triggers over; then let it go on.
        #    Every batch trigger on a running triggerer first (one that exited above has been replaced).
        live_jobs = set(stack.triggerer_jobs.values())
        watcher.wait_until(
            lambda: all(
                ti["state"] == "deferred" and (ti.get("triggerer_job") or {}).get("id") in live_jobs
                for ti in batch.task_instances
            ),
            "every batch trigger runs on a running triggerer",
            timeout=120,
        )
        holder = {int(ti["map_index"]): int(ti["triggerer_job"]["id"]) for ti in batch.task_instances}
        counts: dict[int, int] = {}
        for job in holder.values():
            counts[job] = counts.get(job, 0) + 1
        busiest = max(counts, key=lambda job: counts[job])
        stalled = next(name for name, job in stack.triggerer_jobs.items() if job == busiest)
        other = next(name for name in stack.triggerer_jobs if name != stalled)
        scenario.stalled_triggerer = stalled
        scenario.stalled_held = sorted(i for i, job in holder.items() if job == busiest)
        # Airflow's, not the provider's: every triggerer's loop clears trigger_id of task instances that left
        # ``deferred`` (Trigger.clean_unused: an UPDATE without SKIP LOCKED). A triggerer stopped between
        # that UPDATE and its commit holds the row locks, and every other triggerer waits on them, without
        # heartbeating, until it goes on: nothing is taken over (seen in a CI run, the stall coming a second
        # after step 4 marked the single reage failed). Stall it once nothing is left to clear.
        wait_for(
            "no task instance out of deferred still names a trigger",
            lambda: stack.query(STALE_TRIGGER_REFERENCES)[0][0] == 0,
            timeout=60,
        )
        stack.signal_component(stalled, signal.SIGSTOP)
        stalled_at = time.monotonic()
        stall_began = time.time()
        scenario.note(f"SIGSTOPped {stalled} (job {busiest}, {counts[busiest]} batch triggers)")
        try:
            _wait_until_all_on(watcher, batch, stack.triggerer_jobs[other], "while the first one is stalled")
            scenario.stall_takeover_seconds = time.monotonic() - stalled_at
        finally:
            stack.signal_component(stalled, signal.SIGCONT)
            scenario.stall_window = (stall_began, time.time())
        scenario.note(
            f"{other} took every trigger over after {scenario.stall_takeover_seconds:.1f} s; SIGCONT"
        )
        # It comes back, sees its triggers assigned elsewhere and stops them: on_kill must not cancel.
        wait_for(
            f"{stalled} stopped its copies of the moved triggers",
            lambda: _stopped_everywhere(stack, batch, busiest, scenario.stalled_held),
            timeout=120,
            every=2,
        )
        by_index = {int(ti["map_index"]): ti for ti in batch.task_instances}
        scenario.stalled_logs = {
            index: trigger_log_files(stack, by_index[index]).get(busiest, "")
            for index in scenario.stalled_held
        }
        scenario.note(f"{stalled} stopped its {len(scenario.stalled_held)} copies")

        # 7. SIGKILL the other triggerer, which now holds every trigger; the first takes them all back.
        victim, survivor = other, stalled
        scenario.killed_triggerer = victim
        stack.kill_component(victim)
        killed_triggerer_at = time.monotonic()
        scenario.triggerer_killed_at = time.time()
        scenario.note(f"SIGKILLed {victim} (job {stack.triggerer_jobs[victim]}), holding every batch trigger")
        _wait_until_all_on(watcher, batch, stack.triggerer_jobs[survivor], "after the kill")
        scenario.takeover_seconds = time.monotonic() - killed_triggerer_at
        scenario.note(f"{survivor} holds every batch trigger after {scenario.takeover_seconds:.1f} s")

        # 8. The crash retry resumes its job (3.3) or submits anew; let its job finish, then all of them.
        watcher.wait_until(
            lambda: (
                (crash.task_instances[0]["try_number"], crash.task_instances[0]["state"]) == (2, "running")
            ),
            "the crash reage's retry runs",
            timeout=180,
        )
        scenario.timings["kill to retry"] = time.monotonic() - killed_at
        retry_seen_wall = time.time()
        if AIRFLOW_VERSION >= (3, 3):
            # Let the job go only once the retry has decided about it. The retry asks about the recorded job
            # once (get_job_status), logs that it resumes it, then polls it again as its wait begins: a
            # second poll means the decision was taken while the job was still held. Released earlier (the
            # retry is often seen running seconds before its task process asks), the retry finds the job
            # succeeded and returns it without resuming, and the resume line the test reads never comes.
            # Polls counted from when the retry is seen running (only the retry polls this job by then:
            # the first try died with its worker); a new submission ends the wait too, for the tests to judge.
            wait_for(
                "the crash retry asked about its first try's job and polled it again, or submitted a new job",
                lambda: _crash_retry_went_on(
                    stack, scenario.crash_first_id, retry_seen_wall, submissions_at_kill
                ),
            )
            gate.release_one(scenario.crash_first_id)
            scenario.note(
                "the crash retry asked about its first try's job and polled it again; released it "
                f"{time.time() - retry_seen_wall:.1f} s after the retry was seen running"
            )
        if AIRFLOW_VERSION < (3, 3):
            # Only 3.1 fails a task whose trigger fires before its worker's exit is processed (see
            # RunWatcher.deferrals_reported); on Celery that report can be missing altogether.
            watcher.wait_until(watcher.deferrals_reported, "the scheduler saw every deferral")
        gate.release()
        scenario.note("released every held job")
        watcher.finish(timeout=600)
        scenario.timings["scenario"] = time.monotonic() - started
        scenario.note(f"every run ended after {scenario.timings['scenario']:.0f} s")
    scenario.ledger_after = stack.ledger()
    return scenario


#: The components besides the triggerers that run a Job heartbeating in the metadata database, by job_type
#: (one of each in the stack).
JOB_TYPES = {"scheduler": "SchedulerJob", "dag-processor": "DagProcessorJob"}


def _heartbeated_since(stack: AirflowStack, since: float) -> set[str]:
    """The components (``scheduler``, ``triggerer-1``, ...) whose Job heartbeated after ``since`` (epoch)."""
    rows = stack.query("SELECT id, job_type FROM job WHERE latest_heartbeat > to_timestamp(%s)", (since,))
    ids = {int(job_id) for job_id, _ in rows}
    types = {str(job_type) for _, job_type in rows}
    return {name for name, job_type in JOB_TYPES.items() if job_type in types} | {
        name for name, job_id in stack.triggerer_jobs.items() if job_id in ids
    }


def _survived_or_exited(stack: AirflowStack, names: list[str], since: float) -> bool:
    """Whether each of ``names`` has exited or heartbeated after ``since`` (epoch)."""
    beating = _heartbeated_since(stack, since)
    return all(name in beating or not stack.component_alive(name) for name in names)


def _crash_retry_went_on(stack: AirflowStack, first_id: str, since: float, submissions: int) -> bool:
    """
    Whether the crash retry is past its decision: it polled ``first_id`` twice since ``since`` (epoch), so at
    the least its ask and its wait's first poll, or it submitted a job (``imgreage`` beyond ``submissions``).
    """
    ledger = stack.ledger()
    polls = listbyids_between(ledger, {first_id}, since, time.time())
    return polls >= 2 or int(ledger["counts"]["imgreage"]) > submissions


def _wait_until_all_on(watcher: RunWatcher, batch: Run, job: int, when: str) -> None:
    watcher.wait_until(
        lambda: all(
            ti["state"] == "deferred" and (ti.get("triggerer_job") or {}).get("id") == job
            for ti in batch.task_instances
        ),
        f"triggerer job {job} holds every batch trigger {when}",
        timeout=120,
    )


#: What Airflow's triggerer logs in a trigger's log when it stops a trigger it no longer owns (3.3: it is
#: the same path as a user's kill) and what the triggerer logs when a trigger ends otherwise.
STOPPED_MARKS = ("Trigger cancelled by user action", "trigger completed", "Trigger cancelled")


#: What the provider's on_kill logs once it decided (in a task of its own, after Airflow's own lines).
KILL_DECISIONS = ("Not cancelling Akool job", "Cancelled Akool job", "Could not cancel")


def _stopped_everywhere(stack: AirflowStack, batch: Run, job: int, indexes: list[int]) -> bool:
    """Whether triggerer ``job`` ended its run of each of those batch triggers (and on_kill decided)."""
    by_index = {int(ti["map_index"]): ti for ti in batch.task_instances}
    for index in indexes:
        text = trigger_log_files(stack, by_index[index]).get(job, "")
        if not any(mark in text for mark in STOPPED_MARKS):
            return False
        if "invoking on_kill" in text and not any(mark in text for mark in KILL_DECISIONS):
            return False
    return True


def logged_at(line: str) -> float:
    """The epoch time of a log line that starts with an ISO timestamp (Airflow's output, JSON lines)."""
    stamp = line.removeprefix('{"timestamp":"')[:26]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def first_trigger_start(stack: AirflowStack, job: int) -> float:
    """When triggerer ``job`` first started a trigger (epoch), from the trigger log files as they are now."""
    stamps = [
        logged_at(line)
        for path in stack.home.joinpath("logs").rglob(f"*.log.trigger.{job}.log")
        for line in path.read_text(errors="replace").splitlines()
        if ") starting" in line
    ]
    return min(stamps, default=0.0)


def _healthy(stack: AirflowStack) -> bool:
    with contextlib.suppress(requests.RequestException, ValueError):
        health = requests.get(f"{stack.url}/api/v2/monitor/health", timeout=10).json()
        return all(
            health.get(key, {}).get("status") == "healthy"
            for key in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )
    return False


@pytest.fixture(scope="package")
def postgres_start_log(dstack: AirflowStack, request: pytest.FixtureRequest) -> str:
    """What PostgreSQL logged from its first start until the stack was up and every DAG loaded."""
    return request.config.stash[POSTGRES_START_LOG]


@pytest.fixture(scope="package")
def scenario(dstack: AirflowStack) -> Scenario:
    """Run the scenario once for every distributed test, beside a canary noting when the machine was busy."""
    with canary(dstack.output_dir / "canary.txt") as noted:
        result = _run_scenario(dstack)
    result.machine_late = read(noted)
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat a skip of the distributed tests at the very end, where nobody can miss it."""
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if SKIP_BANNER in reason:
            terminalreporter.write_sep("!", reason.removeprefix("Skipped: "), red=True, bold=True)
            return
