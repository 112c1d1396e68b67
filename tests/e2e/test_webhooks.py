"""
Webhook-first completion on the real stack: the API server mounts the provider's receiver
(``[akool] webhook_receiver``, switched on by ``tests/stack/airflow_stack.py``), the emulator sends signed
callbacks to it, and deferrable reage tasks with ``webhook_url="airflow"`` finish with no status request.

The DAG (``tests/e2e/webhook_dags/``) runs on the e2e modules' shared stack; the test counts only what its
run caused in the emulator's ledger. It holds every job running, then lets half of them end as soon as their
task is seen deferred (quick jobs: their callback comes within ``[akool] webhook_resume_settle`` of the
deferral) and the other half once that window has passed for every task (slow jobs), and prints where the
time went for each.

Airflow gives no signal that a resume right after a deferral is safe (docs/webhooks.md, "Why a callback
right after the deferral waits"): quick jobs wait out the window, which the test asserts by order (no quick
task resumes inside it; every slow job's completion-to-success lag is below every quick job's), never by a
wall-clock bound. The scheduler's own log gives the figure the window must cover: from each deferral to the
scheduler receiving its executor's report of the deferring worker.
"""

from __future__ import annotations

import configparser
import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_akool.webhook.callback_url import DEFAULT_RESUME_SETTLE
from tests.e2e.conftest import JobGate, wait_for, xcom_value
from tests.stack.airflow_stack import AirflowStack

pytestmark = pytest.mark.e2e

DAG_ID = "webhook_first"
TASKS = 6
QUICK = {f"reage_{index}" for index in range(0, TASKS, 2)}
SUCCESS = 3
CALLBACK_LOG_LINE = "Akool's callback finished the wait"


def test_deferred_reage_tasks_are_finished_by_callbacks_without_status_requests(stack: AirflowStack) -> None:
    # The stack's airflow.cfg says the receiver is on, as its processes have it (issue 20).
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(stack.home / "airflow.cfg")
    assert cfg["akool"]["webhook_receiver"] == "True"
    stack.wait_for_dags([DAG_ID])
    before = stack.ledger()
    deferred_at: dict[str, float] = {}
    jobs: dict[str, str] = {}
    with JobGate(stack) as gate:
        run_id = stack.trigger_dag(DAG_ID)

        def all_deferred() -> bool:
            gate.check()
            for ti in stack.task_instances(DAG_ID, run_id):
                if ti["state"] != "deferred" or ti["task_id"] in deferred_at:
                    continue
                deferred_at[ti["task_id"]] = _epoch(ti["trigger"]["created_date"])
                jobs[ti["task_id"]] = xcom_value(stack, ti, "akool_id")
                if ti["task_id"] in QUICK:
                    # A quick job: it ends now, its callback well inside the window.
                    assert gate.release([jobs[ti["task_id"]]]) == [jobs[ti["task_id"]]]
            return len(deferred_at) == TASKS

        wait_for(f"all {TASKS} tasks deferred", all_deferred, every=0.3)
        # The slow jobs end once the window has passed since the last deferral.
        time.sleep(max(0.0, max(deferred_at.values()) + DEFAULT_RESUME_SETTLE + 1 - time.time()))
        gate.check()
        released = gate.release()
    assert sorted(released) == sorted(jobs[task_id] for task_id in jobs if task_id not in QUICK)
    state = stack.wait_for_run(DAG_ID, run_id, timeout=180)
    assert state == "success", _failed_logs(stack, run_id)
    ledger = stack.ledger()
    assert ledger["counts"]["imgreage"] - before["counts"]["imgreage"] == TASKS
    # Not one status request: no check before deferring, and no trigger poll (60 s apart now).
    polls = [r for r in ledger["requests"][len(before["requests"]) :] if r["endpoint"] == "listbyids"]
    assert ledger["counts"]["listbyids"] == before["counts"]["listbyids"], polls
    finals = {
        c["_id"]: c for c in ledger["callbacks"] if c["status"] == SUCCESS and c["_id"] in jobs.values()
    }
    assert len(finals) == TASKS
    # Delivered; a resend is allowed: the emulator gives up waiting after its timeout, and on a busy
    # machine SQLite's write lock (held by the scheduler or triggerer) can keep the receiver longer.
    assert all(c["delivered"] for c in finals.values()), finals
    reported = _executor_reports(stack, run_id)
    figures: dict[str, dict[str, float | None]] = {}
    for ti in stack.task_instances(DAG_ID, run_id):
        assert ti["state"] == "success", ti
        task_id = ti["task_id"]
        completed_at = finals[jobs[task_id]]["at"]
        figures[task_id] = {
            # From the deferral: the job's end (its callback), the resume (queued again), the report of
            # the deferring worker's exit reaching the scheduler (what the window must cover).
            "job_end": round(completed_at - deferred_at[task_id], 2),
            "resumed": round(_epoch(ti["queued_when"]) - deferred_at[task_id], 2),
            "exit_reported": (
                round(reported[task_id] - deferred_at[task_id], 2) if task_id in reported else None
            ),
            # From the job's end to the task's success.
            "end_to_success": round(_epoch(ti["end_date"]) - completed_at, 2),
        }
        # In the task's own log: Akool's callback finished the wait (Airflow's lines say only that the
        # trigger was cancelled).
        log = stack.task_log(ti, int(ti["try_number"]))
        assert f"{CALLBACK_LOG_LINE}: reage job {jobs[task_id]} is success" in log, log[-2000:]
    quick = [figures[t] for t in sorted(QUICK)]
    slow = [figures[t] for t in sorted(set(figures) - QUICK)]
    exits = [f["exit_reported"] for f in figures.values() if f["exit_reported"] is not None]
    print(
        "webhook completion, seconds "
        f"(window {DEFAULT_RESUME_SETTLE:g}): quick end-to-success "
        f"p50 {_p(quick, 0.5):.2f} p99 {_p(quick, 0.99):.2f}; slow end-to-success "
        f"p50 {_p(slow, 0.5):.2f} p99 {_p(slow, 0.99):.2f}; deferral to the scheduler's report of the "
        f"deferring worker: max {max(exits) if exits else float('nan'):.2f} of {len(exits)}",
        figures,
    )
    # The window holds: no quick task was resumed inside it (the trigger row's created_date is the
    # deferral, as the receiver measures it).
    assert all(f["resumed"] >= DEFAULT_RESUME_SETTLE for f in quick), figures
    # ... and costs only the quick jobs: every slow job went from its end to success sooner than any quick
    # one (a busy machine slows both; the window is the difference).
    assert max(f["end_to_success"] for f in slow) < min(f["end_to_success"] for f in quick), figures
    # The triggers read the callback's mark when they start: the operator left an empty one, so Airflow's
    # client has no missing XCom to log at error level (issue 12: no error line in a normal run).
    output = stack.component_output()
    assert not [name for name, text in output.items() if "XCom not found" in text], sorted(output)


def _p(rows: list[dict[str, Any]], q: float) -> float:
    values = sorted(float(row["end_to_success"]) for row in rows)
    return values[min(len(values) - 1, int(q * len(values)))]


_STAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?")


def _executor_reports(stack: AirflowStack, run_id: str) -> dict[str, float]:
    """When the scheduler first received an executor event of each task of the run (its log), epoch s."""
    text = stack.component_output().get("scheduler.log", "")
    first: dict[str, float] = {}
    for line in text.splitlines():
        if "Received executor event with state success" not in line or run_id not in line:
            continue
        task = re.search(r"task_id='([^']+)'", line)
        stamp = _STAMP.search(line)
        if task and stamp and task.group(1) not in first:
            first[task.group(1)] = _epoch(stamp.group(0).replace(",", ".").replace(" ", "T"))
    return first


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _failed_logs(stack: AirflowStack, run_id: str) -> str:
    """The end of the log of each task instance that did not succeed, for the failure message."""
    parts = []
    for ti in stack.task_instances(DAG_ID, run_id):
        if ti["state"] == "success":
            continue
        path = f"/dags/{DAG_ID}/dagRuns/{quote(run_id)}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
        reply = stack.api("GET", path, ok=(200, 404)) or {}
        content = reply.get("content", [])
        events = [str(e.get("event", e))[:300] if isinstance(e, dict) else str(e)[:300] for e in content]
        parts.append(f"{ti['task_id']} {ti['state']}: " + " | ".join(events[-12:]))
    return "\n".join(parts)
