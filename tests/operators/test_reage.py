"""
The reage operators run by ``dag.test()`` against the emulator, deferrable and not: success, failure, bad
input, deadline, kill, mapping, TaskFlow and templates.

The DAG runs are few and shared (a module fixture runs one DAG, several tests read it), because each run
costs seconds; every test still names one behaviour and checks it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import dag, task

from airflow_provider_akool.exceptions import (
    AkoolJobFailedError,
    AkoolJobTimeoutError,
    AkoolValidationError,
)
from airflow_provider_akool.operators.reage import (
    AkoolCancelReageOperator,
    AkoolDetectFacesOperator,
    AkoolImageReageOperator,
    AkoolVideoReageOperator,
)
from airflow_provider_akool.triggers.reage import AkoolReageTrigger
from tests.support.connections import API_KEY
from tests.support.dag_runs import POLL, START, RecordedRun, run_recorded
from tests.support.samples import sample
from tests.support.task_context import StubTaskInstance, kill_while_waiting

# --- One run with every outcome of every waiting operator -------------------------------------------


@pytest.fixture(scope="module")
def outcomes(module_emulator: Any) -> RecordedRun:
    emulator = module_emulator
    portrait, clip = sample(emulator, "portrait.jpg"), sample(emulator, "clip.mp4")
    common = {"poll_interval": POLL}

    @dag(dag_id="reage_outcomes", schedule=None, start_date=START, params={"age": 12})
    def reage_outcomes() -> None:
        @task
        def pick_group() -> str:
            return sample(emulator, "group-faces-3.jpg")

        group = pick_group()
        group_faces = AkoolDetectFacesOperator(task_id="detect_group", image_url=group, single_face=False)
        face = AkoolDetectFacesOperator(task_id="detect_face", image_url=portrait)
        for mode, deferrable in (("sync", False), ("defer", True)):
            waits = {**common, "deferrable": deferrable}
            # Success: TaskFlow XComArgs for the inputs, a template for face_reage.
            AkoolImageReageOperator(
                task_id=f"image_{mode}",
                modify_image=group,
                face_reage="{{ params.age }}",
                target_image=group_faces.output if deferrable else None,
                **waits,
            )
            AkoolVideoReageOperator(
                task_id=f"video_{mode}", modify_video=clip, face_reage=-7, target_image=face.output, **waits
            )
            # Failure (status 4).
            AkoolImageReageOperator(
                task_id=f"image_{mode}_fails",
                modify_image=sample(emulator, "portrait-emulator-fail.jpg"),
                face_reage=5,
                **waits,
            )
            AkoolVideoReageOperator(
                task_id=f"video_{mode}_fails",
                modify_video=sample(emulator, "clip-emulator-fail.mp4"),
                face_reage=5,
                target_image=face.output,
                **waits,
            )
            # Deadline.
            AkoolImageReageOperator(
                task_id=f"image_{mode}_deadline",
                modify_image=sample(emulator, "portrait-emulator-stuck.jpg"),
                face_reage=5,
                timeout=1,
                **waits,
            )
            AkoolVideoReageOperator(
                task_id=f"video_{mode}_deadline",
                modify_video=sample(emulator, "clip-emulator-stuck.mp4"),
                face_reage=5,
                target_image=face.output,
                timeout=1,
                **waits,
            )
        # Submit without waiting, then cancel through the XCom of the submission.
        submitted = AkoolImageReageOperator(
            task_id="image_no_wait",
            modify_image=sample(emulator, "portrait-emulator-stuck.jpg"),
            face_reage=5,
            wait_for_completion=False,
        )
        AkoolCancelReageOperator(task_id="cancel", job_ids=submitted.output)

    return run_recorded(reage_outcomes(), emulator.client)


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_image_reage_succeeds_and_returns_the_result(outcomes: RecordedRun, mode: str) -> None:
    result = outcomes.value(f"image_{mode}")

    assert outcomes.states[(f"image_{mode}", -1)] == "success"
    assert set(result) == {"id", "job_id", "status", "url", "output_path"}
    assert result["status"] == "success"
    assert result["output_path"] is None
    assert result["url"].endswith(f"/media/results/{result['id']}.jpg")
    assert outcomes.job(result["id"]) == {
        "job_id": result["job_id"],
        "kind": "imgreage",
        "status": 3,
        "webhook_url": None,
        "cancelled": False,
    }
    # The ids and the URL are in XCom for the UI link, which the task runner resolved to the URL.
    assert outcomes.value(f"image_{mode}", key="akool_id") == result["id"]
    assert outcomes.value(f"image_{mode}", key="akool_job_id") == result["job_id"]
    assert outcomes.value(f"image_{mode}", key="akool_result_url") == result["url"]
    assert outcomes.value(f"image_{mode}", key="_link_AkoolResultLink") == result["url"]


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_video_reage_succeeds_and_returns_the_result(outcomes: RecordedRun, mode: str) -> None:
    result = outcomes.value(f"video_{mode}")

    assert outcomes.states[(f"video_{mode}", -1)] == "success"
    assert result["status"] == "success"
    assert result["url"].endswith(f"/media/results/{result['id']}.mp4")
    assert outcomes.job(result["id"])["kind"] == "vidreage"


def test_templates_and_xcom_args_are_rendered_then_validated(outcomes: RecordedRun) -> None:
    group = outcomes.value("pick_group")
    faces = outcomes.value("detect_group")
    rendered = outcomes.rendered("image_defer")

    # The image came from a TaskFlow task, the faces from the detect task's XCom, face_reage from a
    # template; "12" passed validation and went out as the integer 12 (the emulator refuses a string).
    assert [face["path"] for face in faces] == [group] * 3
    assert rendered["modify_image"] == group
    assert rendered["target_image"] == faces
    assert rendered["face_reage"] == "12"
    assert outcomes.states[("image_defer", -1)] == "success"
    # Without target_image, the sync task detected the faces itself.
    assert outcomes.rendered("image_sync")["target_image"] is None
    assert outcomes.states[("image_sync", -1)] == "success"


@pytest.mark.parametrize(
    "task_id", ["image_sync_fails", "image_defer_fails", "video_sync_fails", "video_defer_fails"]
)
def test_a_failed_job_fails_the_task_with_the_ids(outcomes: RecordedRun, task_id: str) -> None:
    error = outcomes.failure(task_id)
    akool_id = outcomes.value(task_id, key="akool_id")
    job_id = outcomes.value(task_id, key="akool_job_id")

    assert isinstance(error, AkoolJobFailedError)
    assert (error.akool_id, error.job_id) == (akool_id, job_id)
    assert akool_id in str(error)
    assert job_id in str(error)
    assert "status 4" in str(error)
    assert outcomes.job(akool_id)["status"] == 4
    assert outcomes.job(akool_id)["cancelled"] is False


@pytest.mark.parametrize(
    "task_id", ["image_sync_deadline", "image_defer_deadline", "video_sync_deadline", "video_defer_deadline"]
)
def test_the_deadline_cancels_the_job_and_fails_saying_so(outcomes: RecordedRun, task_id: str) -> None:
    error = outcomes.failure(task_id)
    akool_id = outcomes.value(task_id, key="akool_id")
    job_id = outcomes.value(task_id, key="akool_job_id")

    assert isinstance(error, AkoolJobTimeoutError)
    assert "did not finish within 1 s" in str(error)
    assert f"cancelled job {akool_id} (job_id {job_id})" in str(error)
    assert outcomes.job(akool_id)["status"] == 4
    assert outcomes.job(akool_id)["cancelled"] is True


def test_no_wait_returns_at_submit_and_cancel_takes_the_xcom(outcomes: RecordedRun) -> None:
    submitted = outcomes.value("image_no_wait")

    assert submitted["status"] == "queued"
    assert submitted["output_path"] is None
    assert outcomes.value("cancel") == [submitted["job_id"]]
    assert outcomes.job(submitted["id"])["cancelled"] is True
    # Four deadlines and this cancel; nothing else was cancelled.
    assert outcomes.ledger["counts"]["job_del"] == 5


def test_no_secret_reaches_xcom_or_an_error(outcomes: RecordedRun) -> None:
    assert outcomes.places_holding(API_KEY) == []


# --- Bad input: the task fails before any request ----------------------------------------------------


def test_bad_input_fails_before_any_request_naming_the_parameter(
    module_emulator: Any, emulator_client: Any
) -> None:
    emulator = module_emulator
    url, clip = sample(emulator, "portrait.jpg"), sample(emulator, "clip.mp4")
    face = {"path": url, "opts": "1,2:3,4:5,6:7,8"}
    expected = {
        "reage_word": ("face_reage", {"face_reage": "ten"}),
        "reage_too_old": ("face_reage", {"face_reage": "{{ params.age }}"}),
        "image_url": ("modify_image", {"modify_image": "ftp://example.com/a.jpg"}),
        "bad_opts": ("target_image[0].opts", {"target_image": [{"path": url, "opts": "1,2:3,4"}]}),
        "nine_faces": ("target_image", {"target_image": [face] * 9}),
        "webhook": ("webhook_url", {"webhook_url": "not-a-url"}),
        "poll": ("poll_interval", {"poll_interval": 0}),
        "timeout": ("timeout", {"timeout": "soon"}),
        "output": ("output_path", {"output_path": " "}),
    }

    @dag(dag_id="reage_bad_input", schedule=None, start_date=START, params={"age": 31})
    def reage_bad_input() -> None:
        # Deferrable and not in turn: both validate in execute(), before the first request.
        for index, (name, (_, change)) in enumerate(expected.items()):
            kwargs: dict[str, Any] = {"modify_image": url, "face_reage": 10, "deferrable": index % 2 == 1}
            AkoolImageReageOperator(task_id=name, **{**kwargs, **change})
        AkoolVideoReageOperator(task_id="video_no_faces", modify_video=clip, face_reage=1, target_image=None)
        AkoolVideoReageOperator(
            task_id="video_url",
            modify_video="file:///clip.mp4",
            face_reage=1,
            target_image=[face],
            deferrable=True,
        )
        AkoolDetectFacesOperator(task_id="detect_url", image_url="not a url")
        AkoolDetectFacesOperator(task_id="detect_single", image_url=url, single_face="maybe")
        AkoolCancelReageOperator(task_id="cancel_none", job_ids=[])
        AkoolCancelReageOperator(task_id="cancel_commas", job_ids="a,b")

    run = run_recorded(reage_bad_input(), emulator_client)

    parameters = {name: parameter for name, (parameter, _) in expected.items()}
    parameters |= {
        "video_no_faces": "target_image",
        "video_url": "modify_video",
        "detect_url": "image_url",
        "detect_single": "single_face",
        "cancel_none": "job_ids",
        "cancel_commas": "job_ids",
    }
    for task_id, parameter in parameters.items():
        error = run.failure(task_id)
        assert isinstance(error, AkoolValidationError), (task_id, error)
        assert f"{parameter} must be" in str(error), (task_id, error)
    assert "an integer from -30 to 30; got '31'" in str(run.failure("reage_too_old"))
    assert run.ledger["requests"] == []
    assert not any(run.ledger["counts"].values())


# --- Kill ------------------------------------------------------------------------------------------


def stuck_operator(
    emulator: Any, video: bool, **kwargs: Any
) -> AkoolImageReageOperator | AkoolVideoReageOperator:
    if video:
        return AkoolVideoReageOperator(
            task_id="video",
            modify_video=sample(emulator, "clip-emulator-stuck.mp4"),
            face_reage=3,
            target_image=[{"path": sample(emulator, "portrait.jpg"), "opts": "1,2:3,4:5,6:7,8"}],
            **kwargs,
        )
    return AkoolImageReageOperator(
        task_id="image", modify_image=sample(emulator, "portrait-emulator-stuck.jpg"), face_reage=3, **kwargs
    )


@pytest.mark.parametrize("video", [False, True], ids=["image", "video"])
def test_killing_the_waiting_task_cancels_the_job(
    akool_connection: Any, emulator: Any, emulator_client: Any, video: bool
) -> None:
    operator = stuck_operator(emulator, video, poll_interval=POLL)
    ti, outcome, worker = kill_while_waiting(operator, lambda: emulator_client.counts()["listbyids"])

    akool_id = ti.pushed["akool_id"]
    assert emulator_client.counts()["job_del"] == 1
    assert emulator_client.ledger()["jobs"][akool_id]["cancelled"] is True
    assert emulator_client.ledger()["jobs"][akool_id]["status"] == 4
    # In Airflow the process ends after on_kill; here the wait goes on and sees the cancelled job.
    worker.join(10)
    assert isinstance(outcome[0], AkoolJobFailedError)


@pytest.mark.parametrize("video", [False, True], ids=["image", "video"])
def test_deferring_hands_the_trigger_everything_and_killing_it_cancels_the_job(
    akool_connection: Any, emulator: Any, emulator_client: Any, video: bool
) -> None:
    operator = stuck_operator(emulator, video, poll_interval=POLL, deferrable=True, timeout=600)
    ti = StubTaskInstance()
    before = time.time()

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})

    akool_id, job_id = ti.pushed["akool_id"], ti.pushed["akool_job_id"]
    assert ti.pushed["akool_result_url"].endswith(f"/media/results/{akool_id}.{'mp4' if video else 'jpg'}")
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is None
    trigger = deferred.value.trigger
    assert isinstance(trigger, AkoolReageTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["result_ids"] == [akool_id]
    assert kwargs["job_id_of"] == {akool_id: job_id}
    assert kwargs["poll_interval"] == POLL
    assert before + 600 <= kwargs["deadline"] <= time.time() + 600
    # The operator checked once before deferring.
    assert emulator_client.counts()["listbyids"] == 1

    asyncio.run(trigger.on_kill())

    assert emulator_client.counts()["job_del"] == 1
    assert emulator_client.ledger()["jobs"][akool_id]["cancelled"] is True


def test_a_job_done_before_the_first_check_is_not_deferred(
    akool_connection: Any, emulator: Any, emulator_client: Any
) -> None:
    operator = AkoolImageReageOperator(
        task_id="quick", modify_image=sample(emulator, "portrait.jpg"), face_reage=3, deferrable=True
    )
    # Slow the submit reply down past the job's whole life, so it is finished at the first check.
    emulator_client.add_fault("slow", path="imgreage", seconds=0.6)

    result = operator.execute({"ti": StubTaskInstance()})

    assert result["status"] == "success"
    assert emulator_client.counts()["listbyids"] == 1


# --- Mapping ---------------------------------------------------------------------------------------


def test_every_operator_maps_over_five_inputs(module_emulator: Any, emulator_client: Any) -> None:
    emulator = module_emulator
    names = [f"portrait-{n}-faces-1.jpg" for n in range(5)]

    @dag(dag_id="reage_mapped", schedule=None, start_date=START, params={"age": 4})
    def reage_mapped() -> None:
        @task
        def list_images() -> list[str]:
            return [sample(emulator, name) for name in names]

        images = list_images()
        faces = AkoolDetectFacesOperator.partial(task_id="detect").expand(image_url=images)
        images_reaged = AkoolImageReageOperator.partial(
            task_id="image", face_reage="{{ params.age }}", deferrable=True, poll_interval=POLL
        ).expand(modify_image=images)
        videos = AkoolVideoReageOperator.partial(
            task_id="video", modify_video=sample(emulator, "clip.mp4"), face_reage=-4, poll_interval=POLL
        ).expand(target_image=faces.output)
        cancelled = AkoolCancelReageOperator.partial(task_id="cancel").expand(job_ids=videos.output)
        images_reaged >> cancelled

    run = run_recorded(reage_mapped(), emulator_client)

    assert run.state == "success", run.states
    for task_id in ("detect", "image", "video", "cancel"):
        assert [run.states[(task_id, i)] for i in range(5)] == ["success"] * 5
    images = [run.value("image", i) for i in range(5)]
    videos = [run.value("video", i) for i in range(5)]
    assert [r["status"] for r in images + videos] == ["success"] * 10
    assert len({r["id"] for r in images + videos}) == 10
    assert [run.value("detect", i)[0]["path"].rsplit("/", 1)[1] for i in range(5)] == names
    assert [run.value("cancel", i) for i in range(5)] == [[v["job_id"]] for v in videos]
    # Cancelling finished jobs leaves them as they are.
    assert all(run.job(v["id"])["status"] == 3 for v in videos)
    assert run.ledger["counts"]["imgreage"] == run.ledger["counts"]["vidreage"] == 5
