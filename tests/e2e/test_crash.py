"""
Crash safety on the real stack: SIGKILL the task process of a reage that waits in its worker, and the
retry resumes the same Akool job (Airflow 3.3, ``task_state_store``) instead of paying for a second one.

Below 3.3 the compat stand-in has no store: the retry submits a second job and the first one runs on,
which this test asserts there, as the documented behaviour (README's compatibility table).

The DAG (``tests/e2e/crash_dags/``, on the e2e modules' shared stack) waits in its worker (not deferrable);
the test counts only the jobs submitted after it started, and holds its own job running until it lets go.
"""

from __future__ import annotations

import signal
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import wait_for, xcom_value
from tests.stack.airflow_stack import AirflowStack
from tests.support.airflow_version import HAS_TASK_STATE_STORE

pytestmark = pytest.mark.e2e

DAG_ID = "reliability_crash_resume"
PROCESSING, SUCCESS = 2, 3


def task_process(stack: AirflowStack, ti: dict[str, Any]) -> psutil.Process | None:
    """The process running the task: Airflow titles it ``airflow worker -- <task instance id>``."""
    title = f"airflow worker -- {ti['id']}"
    for proc in stack.process_tree():
        try:
            if title in " ".join(proc.cmdline()):
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def test_a_killed_worker_is_followed_by_a_retry_that_resumes_the_same_job(stack: AirflowStack) -> None:
    stack.wait_for_dags([DAG_ID])
    before = stack.ledger()
    known = set(before["jobs"])

    def new_jobs() -> list[str]:
        return [job_id for job_id in stack.ledger()["jobs"] if job_id not in known]

    def delta(endpoint: str) -> int:
        count: int = stack.ledger()["counts"][endpoint] - before["counts"][endpoint]
        return count

    run_id = stack.trigger_dag(DAG_ID)

    def reage_ti() -> dict[str, Any]:
        (ti,) = stack.task_instances(DAG_ID, run_id)
        return ti

    # The first try submits; its job is held running so that the kill lands in the middle of the wait.
    first_id: str = wait_for("the first try submits", lambda: next(iter(new_jobs()), None), every=0.3)
    stack.set_job_status(first_id, PROCESSING)
    wait_for("the first try polls", lambda: delta("listbyids") >= 1, every=0.3)
    ti = reage_ti()
    assert (ti["state"], ti["try_number"]) == ("running", 1)
    victim = wait_for("the task process is found", lambda: task_process(stack, ti), every=0.3)

    # As the OOM killer would: no on_kill, no cleanup, nothing cancelled.
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    polls_at_kill = delta("listbyids")

    wait_for(
        "the retry runs", lambda: (t := reage_ti())["try_number"] == 2 and t["state"] == "running", every=0.3
    )
    if HAS_TASK_STATE_STORE:
        # The retry asks about the recorded job, then waits for it: let it finish now.
        wait_for("the retry polls the held job", lambda: delta("listbyids") > polls_at_kill + 1, every=0.3)
        stack.set_job_status(first_id, SUCCESS)
    assert stack.wait_for_run(DAG_ID, run_id, timeout=180) == "success"

    ti = reage_ti()
    ledger = stack.ledger()
    jobs = new_jobs()
    result = xcom_value(stack, ti, "return_value")
    retry_log = stack.task_log(ti, 2)
    assert ti["try_number"] == 2
    assert result["status"] == "success"
    if HAS_TASK_STATE_STORE:
        assert delta("imgreage") == 1
        assert jobs == [first_id]
        assert result["id"] == first_id
        assert f"Resuming reage job {first_id} (job_id " in retry_log
        assert "instead of submitting a new one" in retry_log
    else:
        # Airflow < 3.3: a second job, and the first one left running (held here; billed on Akool).
        assert delta("imgreage") == 2
        assert len(jobs) == 2
        assert result["id"] != first_id
        assert ledger["jobs"][first_id]["status"] == PROCESSING
    # The logs of both tries hold no credential.
    logs = stack.task_log(ti, 1) + retry_log
    leaked = [name for name, value in stack.secret_values().items() if value in logs]
    assert leaked == []
