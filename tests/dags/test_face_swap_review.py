"""
The ``akool_face_swap_review`` example: detect, swap, a person approves or rejects, and only an approved
result is published. Run by ``dag.test()`` against the emulator; the person answers from another thread
through Airflow's own HITL endpoint function (the one behind ``PATCH .../hitlDetails``) on the same
metadata database, as the UI or the REST API would.
"""

from __future__ import annotations

import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.example_dags import parse_for_emulator

DAG_ID = "akool_face_swap_review"
#: From 3.3 dag.test() parks a HITL task and waits for an answer from outside; 3.1's dag.test() runs
#: HITLTrigger in line, where the trigger cannot read the answer (the e2e test covers the floor).
PARKS_HITL = Version(version("apache-airflow")).release >= (3, 3)


class Reviewer:
    """The user who answers (what the endpoint reads of the authenticated user)."""

    def get_id(self) -> str:
        return "reviewer"

    def get_name(self) -> str:
        return "Reviewer"


def answer_when_asked(option: str, stop: threading.Event, answered: list[dict[str, Any]]) -> None:
    """Wait for the review task to ask, then answer ``option`` through the HITL endpoint's function."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    while not stop.is_set():
        with create_session() as session:
            row = session.execute(
                select(TaskInstance.run_id, HITLDetail.subject, HITLDetail.body)
                .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                .where(TaskInstance.dag_id == DAG_ID, TaskInstance.task_id == "review")
                .where(HITLDetail.responded_at.is_(None))
            ).first()
            if row is not None:
                reply = update_hitl_detail(
                    dag_id=DAG_ID,
                    dag_run_id=row.run_id,
                    task_id="review",
                    update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                    user=Reviewer(),  # type: ignore[arg-type]
                    session=session,
                )
                answered.append(
                    {"run_id": row.run_id, "subject": row.subject, "body": row.body, "reply": reply}
                )
                return
        time.sleep(0.2)


def run_reviewed(
    bag: Any, emulator: Any, option: str, publish_to: Path
) -> tuple[RecordedRun, dict[str, Any]]:
    stop, answered = threading.Event(), []
    helper = threading.Thread(target=answer_when_asked, args=(option, stop, answered), daemon=True)
    helper.start()
    try:
        run = run_recorded(bag.dags[DAG_ID], emulator.client, run_conf={"publish_to": f"{publish_to}/"})
    finally:
        stop.set()
        helper.join(10)
    assert len(answered) == 1, "the review task never asked"
    return run, answered[0]


@pytest.fixture
def examples(akool_connection: Any, emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The example DAGs parsed for the emulator, as ``make demo`` sets them up."""
    return parse_for_emulator(emulator, monkeypatch, f"{tmp_path}/kept/")


@pytest.mark.skipif(not PARKS_HITL, reason="dag.test() answers HITL from outside on Airflow 3.3+")
def test_an_approved_swap_is_published_and_a_rejected_one_is_not(
    examples: Any,
    emulator: Any,
    airflow_db: Any,
    tmp_path: Path,
) -> None:
    approved_to, rejected_to = tmp_path / "approved", tmp_path / "rejected"

    approved, asked = run_reviewed(examples, emulator, "Approve", approved_to)

    assert approved.state == "success", approved.failures
    swap = approved.value("swap")
    assert swap["status"] == "success"
    assert approved.job(swap["id"])["kind"] == "specifyimage"
    # The person saw the picture, the face put in and the result side by side.
    body = asked["body"]
    assert "| picture | face put in | result |" in body
    assert f"![result]({swap['url']})" in body
    assert "![picture](" in body
    assert "alice.jpg)" in body
    published = Path(approved.value("publish"))
    assert published.parent == approved_to
    assert published.read_bytes() == Path(swap["output_path"]).read_bytes()
    assert approved.states[("review", -1)] == "success"

    rejected, _ = run_reviewed(examples, emulator, "Reject", rejected_to)

    assert rejected.value("swap")["status"] == "success"
    assert rejected.states[("review", -1)] == "success"
    assert rejected.states[("publish", -1)] == "skipped"
    assert not rejected_to.exists() or list(rejected_to.iterdir()) == []
