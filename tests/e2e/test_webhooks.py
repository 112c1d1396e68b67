"""
Webhook-first completion on the real stack: the API server mounts the provider's receiver
(``[akool] webhook_receiver``, switched on by ``tests/stack/airflow_stack.py``), the emulator sends signed
callbacks to it, and deferrable reage tasks with ``webhook_url="airflow"`` finish with no status request.

A stack of its own (one more start: docs/airflow-stack.md has how long that takes): it loads only
``tests/e2e/webhook_dags/``, so the example DAGs' polls do not mix into the ledger this test counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.conftest import xcom_value
from tests.stack.airflow_stack import AirflowStack, StackConfig

pytestmark = pytest.mark.e2e

DAG_ID = "webhook_first"
WEBHOOK_DAGS = Path(__file__).resolve().parent / "webhook_dags"
SUCCESS = 3


@pytest.fixture(scope="module")
def webhook_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    config = StackConfig(
        home=tmp_path_factory.mktemp("airflow-webhook-stack"),
        dags_folder=WEBHOOK_DAGS,
        parallelism=4,
        # Long enough that every task has deferred before its job finishes, and that the job finishes
        # after [akool] webhook_resume_settle (10 s after the deferral): the lag measured below is then the
        # callback's own, not the settle's.
        queued_seconds=12.0,
        processing_seconds=2.0,
    )
    with AirflowStack(config) as stack:
        stack.wait_for_dags([DAG_ID])
        yield stack


def test_deferred_reage_tasks_are_finished_by_callbacks_without_status_requests(
    webhook_stack: AirflowStack,
) -> None:
    stack = webhook_stack
    stack.api("PATCH", f"/dags/{DAG_ID}", json_body={"is_paused": False})
    run_id = stack.trigger_dag(DAG_ID)
    state = stack.wait_for_run(DAG_ID, run_id, timeout=180)
    assert state == "success", _failed_logs(stack, run_id)
    ledger = stack.ledger()
    assert ledger["counts"]["imgreage"] == 3
    # Not one status request: no check before deferring, and no trigger poll (60 s apart now).
    assert ledger["counts"]["listbyids"] == 0, [r for r in ledger["requests"] if r["endpoint"] == "listbyids"]
    finals = {c["_id"]: c for c in ledger["callbacks"] if c["status"] == SUCCESS}
    assert len(finals) == 3
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
