"""
The face swap operators and sensor run by ``dag.test()`` against the emulator over real HTTP, deferrable
and not: image (``specifyimage``), video (``specifyvideo``) and Face Swap Pro (v4), their faces derived
where they can be, success, failure, deadline and cancel, no-wait, the sensor, bad input, and a DAG whose
reage and face swap waits share ``listbyids`` rounds.

As in ``test_reage``, one module DAG run holds the outcomes and several tests read it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import dag

from airflow_provider_akool.exceptions import (
    AkoolFaceDetectError,
    AkoolJobFailedError,
    AkoolJobTimeoutError,
    AkoolValidationError,
)
from airflow_provider_akool.kinds import FACESWAP, FACESWAP_PRO
from airflow_provider_akool.operators.faceswap import (
    AkoolFaceSwapProOperator,
    AkoolImageFaceSwapOperator,
    AkoolVideoFaceSwapOperator,
)
from airflow_provider_akool.operators.reage import (
    AkoolCancelReageOperator,
    AkoolDetectFacesOperator,
)
from airflow_provider_akool.sensors.faceswap import AkoolFaceSwapSensor
from airflow_provider_akool.triggers.base import AkoolKindTrigger
from tests.support.connections import API_KEY
from tests.support.dag_runs import POLL, START, RecordedRun, run_recorded
from tests.support.samples import sample
from tests.support.task_context import StubTaskInstance, kill_while_waiting


def test_the_operators_and_sensor_share_the_kinds_which_ride_in_reages_rounds() -> None:
    assert {
        AkoolImageFaceSwapOperator.kind,
        AkoolVideoFaceSwapOperator.kind,
        AkoolFaceSwapSensor.kind,
    } == {FACESWAP}
    assert AkoolFaceSwapProOperator.kind is FACESWAP_PRO
    # One shared poller key, batch endpoint, aligned polls: reage and face swap ids share listbyids rounds.
    from airflow_provider_akool.kinds import REAGE

    assert FACESWAP.poller == FACESWAP_PRO.poller == REAGE.poller
    assert FACESWAP.batch_size == REAGE.batch_size > 1
    assert FACESWAP.align
    assert FACESWAP_PRO.align
    assert FACESWAP.can_cancel
    assert FACESWAP_PRO.can_cancel
    trigger = FACESWAP_PRO.make_trigger(["a" * 24], started_at=1.0, deadline=2.0)
    assert isinstance(trigger, AkoolKindTrigger)
    _classpath, kwargs = trigger.serialize()
    assert (kwargs["kind"], kwargs["kind_module"]) == (
        "faceswap pro",
        "airflow_provider_akool.kinds.faceswap",
    )


# --- One run with every outcome --------------------------------------------------------------------


@pytest.fixture(scope="module")
def outcomes(module_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> RecordedRun:
    emulator = module_emulator
    group, clip = sample(emulator, "group-faces-2.jpg"), sample(emulator, "clip.mp4")
    alice, bob, carol = (sample(emulator, f"{name}.jpg") for name in ("alice", "bob", "carol"))
    out = tmp_path_factory.mktemp("faceswap-out")

    @dag(dag_id="faceswap_outcomes", schedule=None, start_date=START, params={"enhance": "true"})
    def faceswap_outcomes() -> None:
        frame_faces = AkoolDetectFacesOperator(task_id="detect_frame", image_url=group, single_face=False)
        bob_face = AkoolDetectFacesOperator(task_id="detect_bob", image_url=bob)
        for mode, deferrable in (("sync", False), ("defer", True)):
            waits = {"poll_interval": POLL, "deferrable": deferrable}
            # Success: two portraits for the two faces detected in the picture, face_enhance templated.
            AkoolImageFaceSwapOperator(
                task_id=f"image_{mode}",
                modify_image=group,
                source_image=[alice, carol],
                face_enhance="{{ params.enhance }}",
                output_path=str(out / mode) + "/",
                **waits,
            )
            AkoolVideoFaceSwapOperator(
                task_id=f"video_{mode}",
                modify_video=clip,
                source_image=frame_faces.output if deferrable else [alice, carol],
                target_image=frame_faces.output,
                **waits,
            )
            AkoolFaceSwapProOperator(task_id=f"pro_{mode}", modify_image=bob, source_image=alice, **waits)
            # Failure (status 4): the fail marker on the picture changed.
            AkoolImageFaceSwapOperator(
                task_id=f"image_{mode}_fails",
                modify_image=sample(emulator, "portrait-emulator-fail.jpg"),
                source_image=alice,
                **waits,
            )
            AkoolFaceSwapProOperator(
                task_id=f"pro_{mode}_fails",
                modify_image=sample(emulator, "portrait-emulator-fail.jpg"),
                source_image=alice,
                **waits,
            )
            # Deadline: cancelled by job_id, the task fails saying so.
            AkoolVideoFaceSwapOperator(
                task_id=f"video_{mode}_deadline",
                modify_video=sample(emulator, "clip-emulator-stuck.mp4"),
                source_image=alice,
                target_image=bob_face.output,
                timeout=1,
                **waits,
            )
            AkoolFaceSwapProOperator(
                task_id=f"pro_{mode}_deadline",
                modify_image=sample(emulator, "portrait-emulator-stuck.jpg"),
                source_image=alice,
                timeout=1,
                **waits,
            )
        # Several Pro pairs: the target faces given, the sources' faces detected.
        AkoolFaceSwapProOperator(
            task_id="pro_pairs",
            modify_image=group,
            source_image=[alice, carol],
            target_image=frame_faces.output,
            face_enhance=True,
            single_face_mode=False,
            poll_interval=POLL,
        )
        # A face swap submitted without waiting, a sensor that waits for it, and one cancelled.
        submitted = AkoolImageFaceSwapOperator(
            task_id="image_no_wait", modify_image=bob, source_image=alice, wait_for_completion=False
        )
        AkoolFaceSwapSensor(
            task_id="sensor", result_ids=submitted.output, poke_interval=POLL, deferrable=True
        )
        stuck = AkoolFaceSwapProOperator(
            task_id="pro_no_wait",
            modify_image=sample(emulator, "portrait-emulator-stuck.jpg"),
            source_image=alice,
            wait_for_completion=False,
        )
        AkoolCancelReageOperator(task_id="cancel", job_ids=stuck.output)

    return run_recorded(faceswap_outcomes(), emulator.client)


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_image_face_swap_detects_the_faces_pairs_them_and_keeps_the_result(
    outcomes: RecordedRun, mode: str
) -> None:
    result = outcomes.value(f"image_{mode}")
    job = outcomes.job(result["id"])

    assert outcomes.states[(f"image_{mode}", -1)] == "success"
    assert set(result) == {"id", "job_id", "status", "url", "output_path"}
    assert result["status"] == "success"
    assert result["url"].endswith(f"/media/results/{result['id']}.jpg")
    assert (job["kind"], job["status"], job["cancelled"]) == ("specifyimage", 3, False)
    kept = Path(result["output_path"])
    assert kept.name == f"{result['id']}.jpg"
    assert kept.read_bytes()[:3] == b"\xff\xd8\xff" or kept.read_bytes()[:4] == b"\x89PNG"
    assert outcomes.value(f"image_{mode}", key="akool_result_url") == result["url"]
    assert outcomes.value(f"image_{mode}", key="_link_AkoolResultLink") == result["url"]


def sent(emulator: Any, outcomes: RecordedRun, task_id: str) -> dict[str, Any]:
    """What the emulator received for the task's job (its checked request body)."""
    params: dict[str, Any] = emulator.state.jobs[outcomes.value(task_id)["id"]].params
    return params


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_the_request_pairs_each_detected_face_with_a_source_and_sends_face_enhance(
    outcomes: RecordedRun, module_emulator: Any, mode: str
) -> None:
    body = sent(module_emulator, outcomes, f"image_{mode}")

    # The two faces detected in modify_image, each replaced by a portrait's one detected face.
    assert body["targetImage"] == outcomes.value("detect_frame")
    assert [face["path"].rsplit("/", 1)[1] for face in body["sourceImage"]] == ["alice.jpg", "carol.jpg"]
    assert all(face["opts"] for face in body["sourceImage"])
    assert body["face_enhance"] in (1, True)  # "{{ params.enhance }}" rendered "true"
    assert outcomes.rendered(f"image_{mode}")["face_enhance"] == "true"
    video = sent(module_emulator, outcomes, f"video_{mode}")
    assert video["targetImage"] == outcomes.value("detect_frame")
    assert video["face_enhance"] in (0, False)


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_video_face_swap_succeeds(outcomes: RecordedRun, mode: str) -> None:
    result = outcomes.value(f"video_{mode}")

    assert outcomes.states[(f"video_{mode}", -1)] == "success"
    assert result["status"] == "success"
    assert result["url"].endswith(f"/media/results/{result['id']}.mp4")
    assert outcomes.job(result["id"])["kind"] == "specifyvideo"


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_face_swap_pro_gets_its_url_from_the_poll(outcomes: RecordedRun, mode: str) -> None:
    result = outcomes.value(f"pro_{mode}")

    assert outcomes.states[(f"pro_{mode}", -1)] == "success"
    assert result["status"] == "success"
    # v4's submit reply has no URL: the result's came with a listbyids poll.
    assert result["url"].endswith(f"/media/results/{result['id']}.jpg")
    assert outcomes.job(result["id"])["kind"] == "faceswapByImage"


def test_a_single_pro_pair_sends_no_landmarks_and_several_pairs_do(
    outcomes: RecordedRun, module_emulator: Any
) -> None:
    for mode in ("sync", "defer"):
        single = sent(module_emulator, outcomes, f"pro_{mode}")
        # (The emulator records a left-out opts as None.)
        assert [face["opts"] for face in single["sourceImage"] + single["targetImage"]] == [None, None]
        assert single["targetImage"][0]["path"].endswith("/bob.jpg")
    body = sent(module_emulator, outcomes, "pro_pairs")
    assert body["targetImage"] == outcomes.value("detect_frame")
    assert all(face["opts"] for face in body["sourceImage"])
    assert (body["face_enhance"], body["single_face_mode"]) == (1, 0)
    assert outcomes.value("pro_pairs")["status"] == "success"


@pytest.mark.parametrize(
    "task_id", ["image_sync_fails", "image_defer_fails", "pro_sync_fails", "pro_defer_fails"]
)
def test_a_failed_job_fails_the_task_with_the_ids(outcomes: RecordedRun, task_id: str) -> None:
    error = outcomes.failure(task_id)
    akool_id = outcomes.value(task_id, key="akool_id")
    job_id = outcomes.value(task_id, key="akool_job_id")

    assert isinstance(error, AkoolJobFailedError)
    assert (error.akool_id, error.job_id) == (akool_id, job_id)
    assert "status 4" in str(error)
    assert outcomes.job(akool_id)["status"] == 4
    assert outcomes.job(akool_id)["cancelled"] is False


@pytest.mark.parametrize(
    "task_id", ["video_sync_deadline", "video_defer_deadline", "pro_sync_deadline", "pro_defer_deadline"]
)
def test_the_deadline_cancels_the_job_and_fails_saying_so(outcomes: RecordedRun, task_id: str) -> None:
    error = outcomes.failure(task_id)
    akool_id = outcomes.value(task_id, key="akool_id")
    job_id = outcomes.value(task_id, key="akool_job_id")

    assert isinstance(error, AkoolJobTimeoutError)
    assert "did not finish within 1 s" in str(error)
    assert f"cancelled job {akool_id} (job_id {job_id})" in str(error)
    assert outcomes.job(akool_id)["cancelled"] is True
    # A wait that ended on its deadline pushes no URL: this one was pushed while the job ran (v3: from the
    # submission; Face Swap Pro, whose submission has none: from the first poll, before any deferral).
    ext = "mp4" if task_id.startswith("video") else "jpg"
    assert outcomes.value(task_id, key="akool_result_url").endswith(f"/media/results/{akool_id}.{ext}")


def test_no_wait_returns_at_submit_the_sensor_waits_and_cancel_takes_the_xcom(outcomes: RecordedRun) -> None:
    submitted = outcomes.value("image_no_wait")
    sensed = outcomes.value("sensor")
    pro = outcomes.value("pro_no_wait")

    assert submitted["status"] == "queued"
    assert [entry["id"] for entry in sensed] == [submitted["id"]]
    assert sensed[0]["status"] == "success"
    assert sensed[0]["url"] == submitted["url"]
    assert pro["status"] == "queued"
    assert pro["url"] is None  # v4's reply has none
    assert outcomes.value("cancel") == [pro["job_id"]]
    assert outcomes.job(pro["id"])["cancelled"] is True
    # Four deadlines and this cancel; nothing else was cancelled.
    assert outcomes.ledger["counts"]["job_del"] == 5


def test_no_secret_reaches_xcom_or_an_error(outcomes: RecordedRun) -> None:
    for task_id, map_index in outcomes.tis:
        assert API_KEY not in json.dumps(outcomes.value(task_id, map_index), default=str)
    for error in outcomes.failures.values():
        assert API_KEY not in str(error)


# --- Bad input and pairs that cannot be derived: the task fails before any submission ---------------


def test_bad_input_fails_before_any_request_naming_the_parameter(
    module_emulator: Any, emulator_client: Any
) -> None:
    emulator = module_emulator
    url, clip = sample(emulator, "portrait.jpg"), sample(emulator, "clip.mp4")
    face = {"path": url, "opts": "1,2:3,4:5,6:7,8"}
    image = {"modify_image": url, "source_image": url}
    cases: dict[str, tuple[str, Any, dict[str, Any]]] = {
        "no_source": ("source_image", AkoolImageFaceSwapOperator, {**image, "source_image": []}),
        "source_number": ("source_image", AkoolImageFaceSwapOperator, {**image, "source_image": 7}),
        "source_keys": (
            "source_image[0]",
            AkoolImageFaceSwapOperator,
            {**image, "source_image": [{"url": url}]},
        ),
        "source_opts": (
            "source_image[0].opts",
            AkoolImageFaceSwapOperator,
            {**image, "source_image": [{"path": url, "opts": "1,2"}]},
        ),
        "nine": ("source_image", AkoolImageFaceSwapOperator, {**image, "source_image": [url] * 9}),
        "pairs": ("source_image", AkoolImageFaceSwapOperator, {**image, "target_image": [face, face]}),
        "target_opts": (
            "target_image[0].opts",
            AkoolImageFaceSwapOperator,
            {**image, "target_image": [{"path": url, "opts": "x"}]},
        ),
        "image_url": ("modify_image", AkoolImageFaceSwapOperator, {**image, "modify_image": "ftp://x/a.jpg"}),
        "enhance": ("face_enhance", AkoolImageFaceSwapOperator, {**image, "face_enhance": "maybe"}),
        "webhook": ("webhook_url", AkoolImageFaceSwapOperator, {**image, "webhook_url": "not-a-url"}),
        "output": ("output_path", AkoolImageFaceSwapOperator, {**image, "output_path": " "}),
        "video_faces": (
            "target_image",
            AkoolVideoFaceSwapOperator,
            {"modify_video": clip, "source_image": url, "target_image": None},
        ),
        "video_url": (
            "modify_video",
            AkoolVideoFaceSwapOperator,
            {"modify_video": "file:///clip.mp4", "source_image": url, "target_image": [face]},
        ),
        "pro_pairs": ("target_image", AkoolFaceSwapProOperator, {**image, "source_image": [url, url]}),
        "pro_mode": ("single_face_mode", AkoolFaceSwapProOperator, {**image, "single_face_mode": "often"}),
        "pro_fifty_one": (
            "source_image",
            AkoolFaceSwapProOperator,
            {**image, "source_image": [url] * 51, "target_image": [face] * 51},
        ),
    }

    @dag(dag_id="faceswap_bad_input", schedule=None, start_date=START)
    def faceswap_bad_input() -> None:
        for index, (task_id, (_, operator, kwargs)) in enumerate(cases.items()):
            operator(task_id=task_id, deferrable=index % 2 == 1, **kwargs)

    run = run_recorded(faceswap_bad_input(), emulator_client)

    for task_id, (parameter, _, _) in cases.items():
        error = run.failure(task_id)
        assert isinstance(error, AkoolValidationError), (task_id, error)
        assert f"{parameter} must" in str(error), (task_id, error)
    assert run.ledger["requests"] == []
    assert not any(run.ledger["counts"].values())


def test_faces_that_do_not_pair_fail_after_detect_and_before_the_submission(
    module_emulator: Any, emulator_client: Any
) -> None:
    emulator = module_emulator
    alice = sample(emulator, "alice.jpg")

    @dag(dag_id="faceswap_unpaired", schedule=None, start_date=START)
    def faceswap_unpaired() -> None:
        # Three faces in the picture, one portrait: which face it replaces is not derivable.
        AkoolImageFaceSwapOperator(
            task_id="three_for_one", modify_image=sample(emulator, "group-faces-3.jpg"), source_image=alice
        )
        # A "portrait" without a face.
        AkoolImageFaceSwapOperator(
            task_id="faceless_source",
            modify_image=sample(emulator, "portrait.jpg"),
            source_image=sample(emulator, "faces-0.jpg"),
        )

    run = run_recorded(faceswap_unpaired(), emulator_client)

    error = run.failure("three_for_one")
    assert isinstance(error, AkoolValidationError)
    assert "source_image must have one face per target face" in str(error)
    assert "1 for 3 detected in modify_image" in str(error)
    assert isinstance(run.failure("faceless_source"), AkoolFaceDetectError)
    assert "source_image[0]" in str(run.failure("faceless_source"))
    counts = run.ledger["counts"]
    assert counts["specifyimage"] == 0
    assert sum(counts.values()) == 0 or set(k for k, v in counts.items() if v) <= {"detect"}


# --- Kill: the job is cancelled, waiting in the worker or deferred ----------------------------------


def stuck_swap(
    emulator: Any, pro: bool, **kwargs: Any
) -> AkoolImageFaceSwapOperator | AkoolFaceSwapProOperator:
    stuck, alice = sample(emulator, "portrait-emulator-stuck.jpg"), sample(emulator, "alice.jpg")
    if pro:
        return AkoolFaceSwapProOperator(task_id="pro", modify_image=stuck, source_image=alice, **kwargs)
    return AkoolImageFaceSwapOperator(task_id="image", modify_image=stuck, source_image=alice, **kwargs)


@pytest.mark.parametrize("pro", [False, True], ids=["image", "pro"])
def test_killing_the_waiting_task_cancels_the_job(
    akool_connection: Any, emulator: Any, emulator_client: Any, pro: bool
) -> None:
    operator = stuck_swap(emulator, pro, poll_interval=POLL)
    ti, outcome, worker = kill_while_waiting(operator, lambda: emulator_client.counts()["listbyids"])

    akool_id = ti.pushed["akool_id"]
    assert emulator_client.counts()["job_del"] == 1
    assert emulator_client.ledger()["jobs"][akool_id]["cancelled"] is True
    worker.join(10)
    assert isinstance(outcome[0], AkoolJobFailedError)


@pytest.mark.parametrize("pro", [False, True], ids=["image", "pro"])
def test_deferring_hands_the_kind_trigger_the_job_and_killing_it_cancels_the_job(
    akool_connection: Any, emulator: Any, emulator_client: Any, pro: bool
) -> None:
    operator = stuck_swap(emulator, pro, poll_interval=POLL, deferrable=True, timeout=600)
    ti = StubTaskInstance()

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})

    akool_id, job_id = ti.pushed["akool_id"], ti.pushed["akool_job_id"]
    trigger = deferred.value.trigger
    assert isinstance(trigger, AkoolKindTrigger)
    _, kwargs = trigger.serialize()
    assert (kwargs["kind"], kwargs["ids"]) == (operator.kind.name, [akool_id])
    assert kwargs["job_id_of"] == {akool_id: job_id}
    # Face Swap Pro's submit reply has no URL: the poll before deferring gave it, so the task shows its
    # "Akool result" link while deferred (Airflow stores the link's answer at the deferral), as reage does.
    assert ti.pushed["akool_result_url"].endswith(f"/media/results/{akool_id}.jpg")
    assert operator.result_link_url == ti.pushed["akool_result_url"]

    asyncio.run(trigger.on_kill())

    assert emulator_client.counts()["job_del"] == 1
    assert emulator_client.ledger()["jobs"][akool_id]["cancelled"] is True
