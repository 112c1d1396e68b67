"""
``akool_face_swap_review`` on a real stack: two runs swap a face on the emulator and wait for a person; the
person answers through Airflow's HITL REST API (what the UI's Required Actions send), approving one run and
rejecting the other. Only the approved result is published.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.stack.airflow_stack import AirflowStack

pytestmark = pytest.mark.e2e

DAG_ID = "akool_face_swap_review"


def hitl_path(run_id: str) -> str:
    return f"/dags/{DAG_ID}/dagRuns/{quote(run_id)}/taskInstances/review/-1/hitlDetails"


def pause_reported(stack: AirflowStack, run_id: str) -> bool:
    """
    Whether the scheduler has processed the exit of the worker that paused the review task.

    Airflow's, not the provider's (docs/webhooks.md, "no signal that resuming is safe"): an answer that
    resumes the task before the scheduler handled that worker's exit gets the task failed ("finished with
    state success, but the task instance's state attribute is queued"; seen here when this test answered
    within a second of the pause). A person takes longer; the test waits for the scheduler's own line.
    """
    scheduler = (stack.output_dir / "scheduler.log").read_text(errors="replace")
    return bool(
        re.search(
            re.escape(f"TaskInstance Finished: dag_id={DAG_ID}, task_id=review, run_id={run_id},")
            + r"[^\n]*state=(awaiting_input|deferred),",
            scheduler,
        )
    )


def wait_for_question(stack: AirflowStack, run_id: str, timeout: float = 180.0) -> dict[str, Any]:
    """
    Wait until the run's review task asks and the scheduler has seen it pause (:func:`pause_reported`);
    return the HITL detail it shows.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = stack.api("GET", hitl_path(run_id), ok=(200, 404))
        if detail and "subject" in detail and pause_reported(stack, run_id):
            return dict(detail)
        state = stack.dag_run(DAG_ID, run_id)["state"]
        assert state not in ("success", "failed"), f"{run_id} ended ({state}) before asking"
        time.sleep(1)
    raise AssertionError(f"{run_id}: the review task did not ask (and pause) within {timeout:.0f} s")


def states(stack: AirflowStack, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in stack.task_instances(DAG_ID, run_id)}


def xcom(stack: AirflowStack, run_id: str, task_id: str) -> Any:
    reply = stack.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/xcomEntries/return_value"
    )
    return reply["value"]


def test_a_person_approves_one_run_and_rejects_another_over_rest(stack: AirflowStack) -> None:
    stack.wait_for_dags([DAG_ID])
    folders = {option: stack.home / "published" / option.lower() for option in ("Approve", "Reject")}
    runs = {
        option: stack.trigger_dag(DAG_ID, conf={"publish_to": f"{folder}/"})
        for option, folder in folders.items()
    }
    questions = {option: wait_for_question(stack, run_id) for option, run_id in runs.items()}

    for option, run_id in runs.items():
        question = questions[option]
        assert question["options"] == ["Approve", "Reject"]
        assert question["subject"] == "Publish this face swap?"
        swap = xcom(stack, run_id, "swap")
        # The body the person reads shows the picture, the face put in and the result side by side.
        assert "| picture | face put in | result |" in question["body"]
        assert f"![result]({swap['url']})" in question["body"]
        assert states(stack, run_id).get("publish") not in ("success", "running")
        stack.api("PATCH", hitl_path(run_id), json_body={"chosen_options": [option]})

    assert stack.wait_for_run(DAG_ID, runs["Approve"]) == "success"
    assert stack.wait_for_run(DAG_ID, runs["Reject"]) == "success"

    approved, rejected = states(stack, runs["Approve"]), states(stack, runs["Reject"])
    assert (approved["review"], approved["publish"]) == ("success", "success")
    assert (rejected["review"], rejected["publish"]) == ("success", "skipped")
    published = Path(xcom(stack, runs["Approve"], "publish"))
    swap = xcom(stack, runs["Approve"], "swap")
    assert published.parent == folders["Approve"]
    assert published.read_bytes() == Path(swap["output_path"]).read_bytes()
    assert not folders["Reject"].exists() or list(folders["Reject"].iterdir()) == []
    # Each answer is recorded with who gave it.
    answer = stack.api("GET", hitl_path(runs["Reject"]))
    assert answer["chosen_options"] == ["Reject"]
    assert answer["responded_by_user"]["name"]
