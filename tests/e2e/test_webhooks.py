"""
Webhook-first completion on the real stack: the API server mounts the provider's receiver
(``[akool] webhook_receiver``, switched on by ``tests/stack/airflow_stack.py``), the emulator sends signed
callbacks to it, and deferrable reage tasks with ``webhook_url="airflow"`` finish with no status request.

The DAG (``tests/e2e/webhook_dags/``) runs on the e2e modules' shared stack; the test counts only what
its run caused in the emulator's ledger, and holds the jobs running until every task has deferred and
``[akool] webhook_resume_settle`` has passed, so that the lag it measures is the callback's own.
"""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import quote

import pytest

from airflow_provider_akool.callbacks import DEFAULT_RESUME_SETTLE
from tests.e2e.conftest import JobGate, wait_for, xcom_value
from tests.stack.airflow_stack import AirflowStack

pytestmark = pytest.mark.e2e

DAG_ID = "webhook_first"
TASKS = 3
SUCCESS = 3


def test_deferred_reage_tasks_are_finished_by_callbacks_without_status_requests(stack: AirflowStack) -> None:
    stack.wait_for_dags([DAG_ID])
    before = stack.ledger()
    with JobGate(stack) as gate:
        run_id = stack.trigger_dag(DAG_ID)

        def all_deferred() -> bool:
            gate.check()
            return _deferred(stack, run_id) == TASKS

        wait_for(f"all {TASKS} tasks deferred", all_deferred, every=0.3)
        # A callback within the settle window waits out the rest of it (docs/webhooks.md): let the window
        # pass from when the last deferral was seen, so the lag measured below is the callback's own.
        time.sleep(DEFAULT_RESUME_SETTLE + 1)
        gate.check()
        released = gate.release()
    assert len(released) == TASKS
    state = stack.wait_for_run(DAG_ID, run_id, timeout=180)
    assert state == "success", _failed_logs(stack, run_id)
    ledger = stack.ledger()
    assert ledger["counts"]["imgreage"] - before["counts"]["imgreage"] == TASKS
    # Not one status request: no check before deferring, and no trigger poll (60 s apart now).
    polls = [r for r in ledger["requests"][len(before["requests"]) :] if r["endpoint"] == "listbyids"]
    assert ledger["counts"]["listbyids"] == before["counts"]["listbyids"], polls
    finals = {c["_id"]: c for c in ledger["callbacks"] if c["status"] == SUCCESS and c["_id"] in released}
    assert len(finals) == TASKS
    # Delivered; a resend is allowed: the emulator gives up waiting after its timeout, and on a busy
    # machine SQLite's write lock (held by the scheduler or triggerer) can keep the receiver longer.
    assert all(c["delivered"] for c in finals.values()), finals
    lags = {}
    for ti in stack.task_instances(DAG_ID, run_id):
        assert ti["state"] == "success", ti
        akool_id = xcom_value(stack, ti, "akool_id")
        completed_at = finals[akool_id]["at"]
        # From the job's completion (the emulator noticed it and called back) to the task's success, with
        # where the time went: the scheduler queueing the resumed task, the worker starting it, the run.
        lags[ti["task_id"]] = {
            name: round(_epoch(ti[field]) - completed_at, 2)
            for name, field in (("queued", "queued_when"), ("started", "start_date"), ("success", "end_date"))
        }
    # The target is 2 s; a shared 2-core CI machine measured 2.9 s once (the scheduler and a worker's
    # start-up, not the callback), so the test allows 5 s and prints the figures.
    print("completion-to-success", lags)
    assert all(0 <= lag["success"] < 5.0 for lag in lags.values()), lags
    # The triggers read the callback's mark when they start: the operator left an empty one, so Airflow's
    # client has no missing XCom to log at error level (issue 12: no error line in a normal run).
    output = stack.component_output()
    assert not [name for name, text in output.items() if "XCom not found" in text], sorted(output)


def _deferred(stack: AirflowStack, run_id: str) -> int:
    return sum(ti["state"] == "deferred" for ti in stack.task_instances(DAG_ID, run_id))


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
