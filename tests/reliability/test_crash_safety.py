"""
Crash safety: a try that dies after its job was submitted is followed by a try that resumes the same job.

One ``dag.test()`` run holds every case, each a task with ``retries=1`` whose first try dies at a chosen
point, the way a killed worker would: an exception no code of the provider catches, so nothing is
cancelled or cleaned up. On Airflow 3.3 the retry finds the job in ``task_state_store`` and resumes it (one
submission); below 3.3 the compat stand-in has no store, so the retry submits a second job, which these
tests assert as the documented behaviour there (README's compatibility table).

The real thing, a worker process killed with SIGKILL in the middle of its wait, is in
``tests/e2e/test_crash.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pendulum
import pytest
from airflow.sdk import dag

from airflow_provider_akool.emulator import EmulatorClient
from airflow_provider_akool.exceptions import AkoolJobFailedError
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.kinds import FACESWAP, FACESWAP_PRO
from airflow_provider_akool.operators.base import FROM_FIELD, JOB_RECORD_KEY, AkoolJobOperator, WebhookUrl
from airflow_provider_akool.operators.faceswap import AkoolFaceSwapProOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from airflow_provider_akool.wait import JobSnapshot
from tests.support.airflow_version import HAS_TASK_STATE_STORE
from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.job_kinds import FACE_SWAP, FACE_SWAP_PRO, KINDS, SubmittingKind
from tests.support.ledger import FAILED, PROCESSING, SUCCESS, running_jobs, submissions
from tests.support.samples import sample
from tests.support.task_context import FakeTaskStateStore, RetryTaskInstance, record_of

START = pendulum.datetime(2026, 1, 1, tz="UTC")
POLL = 0.2


class WorkerDied(RuntimeError):
    """What a try dies of here; no provider code catches it, as none would run after a SIGKILL."""


@dataclass(frozen=True)
class Submission:
    task_id: str
    try_number: int
    akool_id: str


class Crashing(AkoolJobOperator):
    """
    An operator whose first try dies at ``crash_at``: ``wait`` (its first poll) or ``keep`` (the download).

    For ``wait``, the dying try pins its job to "processing" so that the next try surely finds it still
    running, and the next try lets it succeed once it is waiting for it again: the emulator's clock alone
    could finish the job between the tries, which would test the "already succeeded" path instead.
    """

    control: ClassVar[EmulatorClient | None] = None
    submitted: ClassVar[list[Submission]] = []

    def __init__(self, *, crash_at: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash_at = crash_at
        self._try = 0

    def execute(self, context: Any) -> dict[str, Any]:
        self._try = context["ti"].try_number
        return super().execute(context)

    def submit(self, hook: AkoolHook, context: Any, webhook_url: WebhookUrl = FROM_FIELD) -> JobSnapshot:
        job = super().submit(hook, context, webhook_url)  # type: ignore[safe-super]
        self.submitted.append(Submission(self.task_id, self._try, job.id))
        return job

    def poll(self, hook: AkoolHook, job: JobSnapshot) -> JobSnapshot | None:
        snapshot = super().poll(hook, job)
        assert self.control is not None
        if self.crash_at == "wait" and snapshot is not None and snapshot.status is not None:
            if self._try == 1:
                self.control.set_job_status(job.id, PROCESSING)
                raise WorkerDied(f"the worker died while waiting for {job.id}")
            if snapshot.status == PROCESSING:
                self.control.set_job_status(job.id, SUCCESS)
        return snapshot

    def _keep(self, job: JobSnapshot) -> str | None:
        if self.crash_at == "keep" and self._try == 1:
            raise WorkerDied(f"the worker died while keeping the result of {job.id}")
        return super()._keep(job)


class CrashingImageReageOperator(Crashing, AkoolImageReageOperator):
    """An image reage that dies as :class:`Crashing` says."""


class CrashingFaceSwapProOperator(Crashing, AkoolFaceSwapProOperator):
    """A Face Swap Pro job that dies as :class:`Crashing` says: its submission gave no result URL."""


@pytest.fixture(scope="module")
def crashes(module_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordedRun, Path]:
    emulator = module_emulator
    output = tmp_path_factory.mktemp("kept")
    Crashing.control = emulator.client
    Crashing.submitted = []
    retry = {"retries": 1, "retry_delay": timedelta(0), "poll_interval": POLL}

    @dag(dag_id="reliability_crashes", schedule=None, start_date=START)
    def reliability_crashes() -> None:
        portrait = sample(emulator, "portrait.jpg")
        # Dies mid-wait in the worker; the retry resumes the running job.
        CrashingImageReageOperator(
            task_id="dies_waiting", crash_at="wait", modify_image=portrait, face_reage=4, **retry
        )
        # Dies at the check before deferring; the retry resumes the job and defers for it.
        CrashingImageReageOperator(
            task_id="dies_before_deferring",
            crash_at="wait",
            modify_image=portrait,
            face_reage=4,
            deferrable=True,
            **retry,
        )
        # Dies after the job succeeded, while keeping its result; the retry keeps it without a new job.
        CrashingImageReageOperator(
            task_id="dies_keeping",
            crash_at="keep",
            modify_image=portrait,
            face_reage=4,
            output_path=f"{output}/",
            **retry,
        )
        # Face Swap Pro dies at the check before deferring, the first reply that has its result URL (its
        # submission had none); the retry resumes the job, shows the link and defers for it.
        CrashingFaceSwapProOperator(
            task_id="pro_dies_before_deferring",
            crash_at="wait",
            modify_image=sample(emulator, "bob.jpg"),
            source_image=portrait,
            deferrable=True,
            **retry,
        )
        # durable=False opts out: the retry submits anew, on every Airflow.
        CrashingImageReageOperator(
            task_id="not_durable",
            crash_at="wait",
            modify_image=portrait,
            face_reage=4,
            durable=False,
            **retry,
        )
        # A job that failed is not resumed: the retry submits anew.
        CrashingImageReageOperator(
            task_id="job_fails",
            crash_at="never",
            modify_image=sample(emulator, "portrait-emulator-fail.jpg"),
            face_reage=4,
            **retry,
        )

    run = run_recorded(reliability_crashes(), emulator.client)
    Crashing.control = None
    return run, output


def submitted_by(task_id: str) -> list[Submission]:
    return [s for s in Crashing.submitted if s.task_id == task_id]


def test_the_submission_record_of_each_case_matches_the_ledger(crashes: tuple[RecordedRun, Path]) -> None:
    run, _ = crashes
    ids = {s.akool_id for s in Crashing.submitted}

    assert ids == set(run.ledger["jobs"])
    assert submissions(run.ledger) == len(Crashing.submitted)


@pytest.mark.parametrize("task_id", ["dies_waiting", "dies_before_deferring", "pro_dies_before_deferring"])
def test_a_try_that_dies_waiting_is_followed_by_one_that_resumes_the_job(
    crashes: tuple[RecordedRun, Path], task_id: str
) -> None:
    run, _ = crashes
    result = run.value(task_id)
    first = submitted_by(task_id)[0]

    assert run.states[(task_id, -1)] == "success"
    assert run.tis[(task_id, -1)].try_number == 2
    assert result["status"] == "success"
    assert run.job(result["id"])["status"] == SUCCESS
    if HAS_TASK_STATE_STORE:
        # One job, submitted by the first try, finished for the second; its ids are in XCom again.
        assert submitted_by(task_id) == [Submission(task_id, 1, result["id"])]
        assert run.value(task_id, key="akool_id") == first.akool_id
        assert run.value(task_id, key="akool_result_url") == result["url"]
    else:
        # Airflow < 3.3: no store, so the retry paid for a second job, and the first runs on (held here).
        assert [s.try_number for s in submitted_by(task_id)] == [1, 2]
        assert result["id"] == submitted_by(task_id)[1].akool_id != first.akool_id
        assert running_jobs(run.ledger).count(first.akool_id) == 1


def test_a_try_that_dies_after_the_job_succeeded_is_followed_by_one_that_keeps_it(
    crashes: tuple[RecordedRun, Path],
) -> None:
    run, output = crashes
    result = run.value("dies_keeping")

    assert run.states[("dies_keeping", -1)] == "success"
    assert run.tis[("dies_keeping", -1)].try_number == 2
    assert result["output_path"] == str(output / f"{result['id']}.jpg")
    assert Path(result["output_path"]).read_bytes()[:2] == b"\xff\xd8"
    expected_tries = [1] if HAS_TASK_STATE_STORE else [1, 2]
    assert [s.try_number for s in submitted_by("dies_keeping")] == expected_tries
    assert result["id"] == submitted_by("dies_keeping")[-1].akool_id


def test_durable_false_submits_on_every_try(crashes: tuple[RecordedRun, Path]) -> None:
    run, _ = crashes
    submitted = submitted_by("not_durable")

    assert run.states[("not_durable", -1)] == "success"
    assert [s.try_number for s in submitted] == [1, 2]
    assert run.value("not_durable")["id"] == submitted[1].akool_id
    # The first job was left pinned to processing by the dying try: what a crash without a store costs.
    assert run.job(submitted[0].akool_id)["status"] == PROCESSING


def test_a_failed_job_is_not_resumed_the_retry_submits_anew(crashes: tuple[RecordedRun, Path]) -> None:
    run, _ = crashes
    submitted = submitted_by("job_fails")
    error = run.failure("job_fails")

    assert [s.try_number for s in submitted] == [1, 2]
    assert isinstance(error, AkoolJobFailedError)
    assert error.akool_id == submitted[1].akool_id
    assert all(run.job(s.akool_id)["status"] == FAILED for s in submitted)


def test_the_job_is_recorded_in_task_state_store_where_airflow_has_one(
    crashes: tuple[RecordedRun, Path],
) -> None:
    run, _ = crashes
    operator = CrashingImageReageOperator(
        task_id="t", crash_at="never", modify_image="http://x/a.jpg", face_reage=1
    )
    if not HAS_TASK_STATE_STORE:
        # The documented degradation: the compat stand-in, which is never durable.
        from airflow.providers.common.compat._resumable_job_mixin import ResumableJobMixin

        assert isinstance(operator, ResumableJobMixin)
        assert operator.durable is False
        return
    import json

    from airflow._shared.state import TaskScope
    from airflow.state import get_state_backend

    assert operator.durable is True
    ti = run.tis[("dies_waiting", -1)]
    scope = TaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=-1)
    record = json.loads(get_state_backend().get(scope, JOB_RECORD_KEY))
    first = submitted_by("dies_waiting")[0]

    assert record["id"] == first.akool_id
    assert record["job_id"] == run.job(first.akool_id)["job_id"]
    assert record["url"].endswith(f"/media/results/{first.akool_id}.jpg")
    assert isinstance(record["submitted_at"], float)
    assert record["kind"] == "reage"


# --- What a later try does with each kind of record (execute() with a store, no DAG run) -------------


EIGHT_DAYS = 8 * 24 * 3600.0

# name: (status to pin the earlier job to, or None to leave it running; record age; what the try does)
RECORDS: dict[str, tuple[int | None, float, str]] = {
    "running": (None, 1.0, "resume"),
    "succeeded": (SUCCESS, 1.0, "return it"),
    "failed": (FAILED, 1.0, "submit"),
    "succeeded_8_days_ago": (SUCCESS, EIGHT_DAYS, "submit"),
}


def submit_earlier(emulator: Any, kind: SubmittingKind) -> JobSnapshot:
    """An earlier try's job of ``kind``, its faces given (no detect): what the later try finds recorded."""
    portrait, face = sample(emulator, "portrait.jpg"), {"path": sample(emulator, "alice.jpg")}
    landmarks = "1,2:3,4:5,6:7,8"
    if kind is FACE_SWAP_PRO:
        return FACESWAP_PRO.submit_job(
            AkoolHook(), {"source_image": [face], "target_image": [{"path": portrait}]}
        )
    if kind is FACE_SWAP:
        faces = [{**face, "opts": landmarks}]
        return FACESWAP.submit_job(
            AkoolHook(), {"modify_image": portrait, "source_image": faces, "target_image": faces}
        )
    return AkoolHook().submit_image_reage(portrait, 3, [{"path": portrait, "opts": landmarks}])


# Every record with reage; face swap where its path differs: image face swap detects two pictures before a
# new submission (never before resuming), Face Swap Pro's record has no result URL (its submission gave none).
KIND_RECORDS = [
    *(pytest.param("reage", name, id=name) for name in RECORDS),
    pytest.param("faceswap", "running", id="faceswap-running"),
    pytest.param("faceswap", "failed", id="faceswap-failed"),
    pytest.param("faceswap_pro", "running", id="faceswap_pro-running"),
    pytest.param("faceswap_pro", "succeeded", id="faceswap_pro-succeeded"),
]


@pytest.mark.parametrize(("kind_name", "name"), KIND_RECORDS)
def test_a_later_try_acts_on_the_recorded_job_by_its_status(
    akool_connection: Any, emulator: Any, emulator_client: Any, kind_name: str, name: str
) -> None:
    pinned, age, expected = RECORDS[name]
    kind = KINDS[kind_name]
    earlier = submit_earlier(emulator, kind)
    if pinned is not None:
        emulator_client.set_job_status(earlier.id, pinned)
    operator = kind.operator(emulator, "portrait.jpg", task_id="retry", poll_interval=POLL)
    record = {**record_of(earlier.id, earlier.job_id, age=age), "kind": operator.kind.name}
    store = FakeTaskStateStore({JOB_RECORD_KEY: record})
    ti = RetryTaskInstance()

    result = operator.execute({"ti": ti, "task_state_store": store})  # type: ignore[arg-type]

    assert result["status"] == "success"
    if not HAS_TASK_STATE_STORE:
        # The stand-in never reads the store: every try is a new job.
        expected = "submit"
    counts = emulator_client.counts()
    if expected == "submit":
        assert counts[kind.submit_endpoint] == 2
        assert result["id"] != earlier.id
        assert counts["detect"] == kind.detects
    else:
        assert counts[kind.submit_endpoint] == 1
        assert result["id"] == earlier.id
        assert ti.pushed["akool_id"] == earlier.id
        assert ti.pushed["akool_job_id"] == earlier.job_id
        assert counts["detect"] == 0  # a resumed job is not detected again
    # The result link, also where neither the record nor the submission had a URL (Face Swap Pro).
    assert ti.pushed["akool_result_url"] == result["url"]
    assert result["url"].endswith(f"/media/results/{result['id']}.jpg")
    if expected == "return it":
        # Asked once whether it finished, and not waited for.
        assert counts["listbyids"] == 1
    if HAS_TASK_STATE_STORE:
        assert store.values[JOB_RECORD_KEY]["id"] == result["id"]
    else:
        assert store.values[JOB_RECORD_KEY]["id"] == earlier.id  # never written


@pytest.mark.parametrize(
    "record",
    [
        "not a record",
        {"id": "", "submitted_at": 1.0},
        {"id": "abc", "submitted_at": "yesterday"},
        # An id Akool does not know, recorded longer ago than the not-found grace.
        {"id": "0" * 24, "job_id": None, "url": None, "submitted_at": 1.0},
    ],
    ids=["not_a_dict", "empty_id", "bad_time", "unknown_id"],
)
def test_a_record_that_cannot_be_resumed_leads_to_a_new_submission(
    akool_connection: Any, emulator: Any, emulator_client: Any, record: Any
) -> None:
    store = FakeTaskStateStore({JOB_RECORD_KEY: record})
    operator = AkoolImageReageOperator(
        task_id="retry", modify_image=sample(emulator, "portrait.jpg"), face_reage=3, poll_interval=POLL
    )

    result = operator.execute({"ti": RetryTaskInstance(), "task_state_store": store})  # type: ignore[arg-type]

    assert result["status"] == "success"
    assert emulator_client.counts()["imgreage"] == 1
    assert list(emulator_client.ledger()["jobs"]) == [result["id"]]


def test_a_later_try_of_a_background_change_resumes_its_recorded_job(
    akool_connection: Any, emulator: Any, emulator_client: Any
) -> None:
    from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator

    params: dict[str, Any] = {
        "origin_img": sample(emulator, "product-400x300.png"),
        "canvas_size": "800x600",
        "modify_origin_img_size": "400x300",
        "overlay_origin_x": 10,
        "overlay_origin_y": 10,
        "color_code": "#224466",
    }
    earlier = AkoolHook().submit_background_change(**params)
    store = FakeTaskStateStore({JOB_RECORD_KEY: record_of(earlier.id, None)})
    operator = AkoolBackgroundChangeOperator(task_id="retry", poll_interval=POLL, **params)

    result = operator.execute({"ti": RetryTaskInstance(), "task_state_store": store})  # type: ignore[arg-type]

    assert result["status"] == "success"
    if HAS_TASK_STATE_STORE:
        assert result["id"] == earlier.id
        assert emulator_client.counts()["bg_replace"] == 1
    else:
        assert result["id"] != earlier.id
        assert emulator_client.counts()["bg_replace"] == 2


@pytest.mark.skipif(not HAS_TASK_STATE_STORE, reason="a job is resumed from task_state_store (Airflow 3.3+)")
def test_a_later_try_that_resumes_a_webhook_job_leaves_the_mark_its_callbacks_are_checked_by(
    akool_connection: Any, emulator: Any, emulator_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Airflow clears a task's XComs when a try starts, the pending callback mark among them; the resumed job's
    callbacks still carry its first submission's token, and the receiver checks them by that mark.
    """
    from airflow_provider_akool.webhook.callback_url import CALLBACK_XCOM_KEY, new_token, token_digest

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:9")
    earlier = AkoolHook().submit_image_reage(
        sample(emulator, "portrait.jpg"),
        3,
        [{"path": sample(emulator, "portrait.jpg"), "opts": "1,2:3,4:5,6:7,8"}],
    )
    digest = token_digest(new_token())
    record = {**record_of(earlier.id, earlier.job_id), "webhook_token_sha256": digest}
    ti = RetryTaskInstance()
    operator = AkoolImageReageOperator(
        task_id="retry",
        modify_image=sample(emulator, "portrait.jpg"),
        face_reage=3,
        poll_interval=POLL,
        webhook_url="airflow",
    )

    store = FakeTaskStateStore({JOB_RECORD_KEY: record})
    result = operator.execute({"ti": ti, "task_state_store": store})  # type: ignore[arg-type]

    assert result["id"] == earlier.id
    assert emulator_client.counts()["imgreage"] == 1
    assert ti.pushed[CALLBACK_XCOM_KEY] == {"token_sha256": digest, "conn_id": "akool_default"}
