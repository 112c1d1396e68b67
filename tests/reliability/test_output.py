"""
Results are never silently overwritten or lost after paying: real ``dag.test()`` runs, in the worker and
deferred, counting the submissions that reached the emulator.

- One file name for every index of a mapped task fails before any request; a name with the map index,
  an ``output_path`` given to ``expand()``, a folder, or a single index do not.
- What can be checked without writing (a path under a file, a read-only folder, a scheme nothing serves,
  a missing connection, a file already at the name) fails before any submission, without retry.
- A file that appears at the name while the job runs is not replaced; ``overwrite=True`` replaces it.
- A failure while writing (a full disk) is our error, naming where the result still is on Akool.
- A success reply without a usable URL falls back on the submission's; a ``javascript:`` URL never
  reaches XCom or the link.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import dag

from airflow_provider_akool.emulator import EmulatorClient
from airflow_provider_akool.exceptions import (
    AkoolOutputError,
    AkoolOutputExistsError,
    AkoolOutputPathError,
    AkoolResponseError,
)
from airflow_provider_akool.links import RESULT_URL_XCOM_KEY, AkoolResultLink
from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator, AkoolVideoReageOperator
from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.ledger import PROCESSING, SUCCESS, submissions
from tests.support.mounts import read_only_folder, small_disk
from tests.support.samples import sample

START = pendulum.datetime(2026, 1, 1, tz="UTC")
POLL = 0.2
MODES = {"worker": False, "deferred": True}
#: Retries the user allowed: a failure that must not retry runs one try all the same.
RETRIES: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(0)}
FACE = "1,2:3,4:5,6:7,8"


def link_of(run: RecordedRun, task_id: str, map_index: int = -1) -> Any:
    """What the UI link of the task instance shows (stored by the task runner after the try)."""
    return run.value(task_id, map_index, key=AkoolResultLink().xcom_key)


# --- One name for every map index ----------------------------------------------------------------------


def test_one_file_name_for_every_map_index_fails_before_any_request(
    airflow_db: Any, akool_connection: Any, emulator: Any, emulator_client: EmulatorClient, tmp_path: Path
) -> None:
    images = [sample(emulator, f"person-{n}.jpg") for n in range(3)]
    common: dict[str, Any] = {"face_reage": 3, "poll_interval": POLL, **RETRIES}

    @dag(dag_id="output_map_collisions", schedule=None, start_date=START)
    def output_map_collisions() -> None:
        # The report's case: one rendered name for three results.
        AkoolImageReageOperator.partial(
            task_id="same_name", output_path=f"{tmp_path}/same/result-" + "{{ ds }}.jpg", **common
        ).expand(modify_image=images)
        AkoolImageReageOperator.partial(
            task_id="same_name_deferred",
            output_path=f"{tmp_path}/same/deferred-" + "{{ ds }}.jpg",
            deferrable=True,
            **common,
        ).expand(modify_image=images)
        # None of these collide.
        AkoolImageReageOperator.partial(
            task_id="per_index",
            output_path=f"{tmp_path}/per_index/result-" + "{{ ds }}-{{ ti.map_index }}.jpg",
            **common,
        ).expand(modify_image=images)
        AkoolImageReageOperator.partial(task_id="expanded", modify_image=images[0], **common).expand(
            output_path=[f"{tmp_path}/expanded/a.jpg", f"{tmp_path}/expanded/b.jpg"]
        )
        AkoolImageReageOperator.partial(task_id="folder", output_path=f"{tmp_path}/folder/", **common).expand(
            modify_image=images
        )
        AkoolImageReageOperator.partial(
            task_id="single", output_path=f"{tmp_path}/single/result.jpg", **common
        ).expand(modify_image=images[:1])

    run = run_recorded(output_map_collisions(), emulator_client)

    for task_id in ("same_name", "same_name_deferred"):
        for index in range(3):
            error = run.failure(task_id, index)
            assert isinstance(error, AkoolOutputPathError), error
            message = str(error)
            assert "output_path" in message, message
            assert "every map index" in message, message
            assert "{{ ti.map_index }}" in message, message
            assert "folder ending with /" in message, message
            assert run.tis[(task_id, index)].try_number == 1  # no retry: a retry cannot fix it
    # Only the tasks that do not collide submitted: 3 + 2 + 3 + 1.
    assert submissions(run.ledger) == 9
    assert not (tmp_path / "same").exists()
    for task_id, count in (("per_index", 3), ("expanded", 2), ("folder", 3), ("single", 1)):
        kept = {run.value(task_id, index)["output_path"] for index in range(count)}
        assert len(kept) == count, (task_id, kept)
        assert all(Path(path).read_bytes()[:2] == b"\xff\xd8" for path in kept)
    names = sorted(p.name for p in (tmp_path / "per_index").iterdir())
    assert [name.rsplit("-", 1)[1] for name in names] == ["0.jpg", "1.jpg", "2.jpg"], names


# --- What can be checked without writing -----------------------------------------------------------


def test_what_can_be_checked_without_writing_fails_before_any_submission_and_without_retry(
    airflow_db: Any, akool_connection: Any, emulator: Any, emulator_client: EmulatorClient, tmp_path: Path
) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    (tmp_path / "taken.jpg").write_bytes(b"a result of an earlier run")
    portrait = sample(emulator, "portrait.jpg")
    cases: dict[str, tuple[str, type[Exception], tuple[str, ...]]] = {
        "under_a_file": (f"{tmp_path}/blocker/out/", AkoolOutputPathError, ("is a file, not a folder",)),
        "read_only": (f"{tmp_path}/ro/out/", AkoolOutputPathError, ("cannot be written", f"{tmp_path}/ro")),
        # Not s3: the dev environment has the Amazon provider (the amazon extra), which serves it.
        "gs_without_provider": (
            "gs://bucket/results/",
            AkoolOutputPathError,
            ("apache-airflow-providers-google",),
        ),
        "unknown_connection": (
            f"file://no_such_files@{tmp_path}/out/",
            AkoolOutputPathError,
            ("'no_such_files'", "does not exist"),
        ),
        "file_exists": (
            f"{tmp_path}/taken.jpg",
            AkoolOutputExistsError,
            ("already exists", "overwrite=True"),
        ),
    }

    @dag(dag_id="output_checked_before", schedule=None, start_date=START)
    def output_checked_before() -> None:
        for name, (output_path, _, _) in cases.items():
            for mode, deferrable in MODES.items():
                AkoolImageReageOperator(
                    task_id=f"{name}_{mode}",
                    modify_image=portrait,
                    face_reage=3,
                    output_path=output_path,
                    deferrable=deferrable,
                    poll_interval=POLL,
                    **RETRIES,
                )

    with read_only_folder(tmp_path / "ro"):
        run = run_recorded(output_checked_before(), emulator_client)

    for name, (output_path, error_class, words) in cases.items():
        for mode in MODES:
            error = run.failure(f"{name}_{mode}")
            assert isinstance(error, error_class), (name, mode, error)
            message = str(error)
            assert "output_path" in message, message
            assert output_path in message, message
            for word in words:
                assert word in message, (word, message)
            assert run.tis[(f"{name}_{mode}", -1)].try_number == 1, (name, mode)
    assert submissions(run.ledger) == 0
    assert run.ledger["requests"] == []
    assert (tmp_path / "taken.jpg").read_bytes() == b"a result of an earlier run"


# --- A file that appears while the job runs ----------------------------------------------------------


@contextmanager
def beside(action: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run ``action`` in a thread beside the DAG run; stop it when the run ends."""
    stop = threading.Event()
    thread = threading.Thread(target=action, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def another_run_writes(
    client: EmulatorClient, target: Path, content: bytes
) -> Callable[[threading.Event], None]:
    """Once the job is submitted, hold it processing, write ``target`` as another run would, let it end."""

    def act(stop: threading.Event) -> None:
        while not stop.is_set():
            jobs = client.ledger()["jobs"]
            if jobs:
                (akool_id,) = jobs
                client.set_job_status(akool_id, PROCESSING)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                client.set_job_status(akool_id, SUCCESS)
                return
            time.sleep(0.02)

    return act


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("overwrite", [False, True], ids=["default", "overwrite"])
def test_a_file_written_meanwhile_is_replaced_only_with_overwrite(
    airflow_db: Any,
    akool_connection: Any,
    emulator: Any,
    emulator_client: EmulatorClient,
    tmp_path: Path,
    mode: str,
    overwrite: bool,
) -> None:
    target = tmp_path / "out" / "result.jpg"

    @dag(dag_id=f"output_written_meanwhile_{mode}_{overwrite}", schedule=None, start_date=START)
    def written_meanwhile() -> None:
        AkoolImageReageOperator(
            task_id="reage",
            modify_image=sample(emulator, "portrait.jpg"),
            face_reage=3,
            output_path=str(target),
            overwrite=overwrite,
            deferrable=MODES[mode],
            poll_interval=POLL,
            **RETRIES,
        )

    with beside(another_run_writes(emulator_client, target, b"another run's result")):
        run = run_recorded(written_meanwhile(), emulator_client)

    assert submissions(run.ledger) == 1
    (akool_id,) = run.ledger["jobs"]
    if overwrite:
        assert run.value("reage")["output_path"] == str(target)
        assert target.read_bytes()[:2] == b"\xff\xd8"
        return
    error = run.failure("reage")
    assert isinstance(error, AkoolOutputExistsError), error
    url = f"{emulator.url}/media/results/{akool_id}.jpg"
    message = str(error)
    assert str(target) in message, message
    assert url in message, message
    assert "until about" in message, message
    assert "7 days" in message, message
    assert "overwrite=True" in message, message
    assert run.tis[("reage", -1)].try_number == 1
    assert target.read_bytes() == b"another run's result"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.jpg"]


# --- Failures while writing, after paying ----------------------------------------------------------


def test_a_full_disk_after_paying_is_our_error_naming_where_the_result_is(
    airflow_db: Any, akool_connection: Any, emulator: Any, emulator_client: EmulatorClient, tmp_path: Path
) -> None:
    face = [{"path": sample(emulator, "portrait.jpg"), "opts": FACE}]
    with small_disk(tmp_path / "disk") as disk:

        @dag(dag_id="output_disk_full", schedule=None, start_date=START)
        def output_disk_full() -> None:
            for mode, deferrable in MODES.items():
                # A video result (256 KiB) on an 8 KiB disk.
                AkoolVideoReageOperator(
                    task_id=mode,
                    modify_video=sample(emulator, "clip.mp4"),
                    face_reage=3,
                    target_image=face,
                    output_path=f"{disk}/",
                    deferrable=deferrable,
                    poll_interval=POLL,
                )

        run = run_recorded(output_disk_full(), emulator_client)
        left_on_disk = sorted(p.name for p in disk.iterdir())

    assert submissions(run.ledger) == 2
    assert left_on_disk == []  # no partial file, no temporary
    for mode in MODES:
        error = run.failure(mode)
        assert isinstance(error, AkoolOutputError), error
        assert not isinstance(error, OSError)
        akool_id = run.value(mode, key="akool_id")
        message = str(error)
        assert f"{emulator.url}/media/results/{akool_id}.mp4" in message, message
        assert "No space left on device" in message, message
        assert "until about" in message, message
        assert "still on Akool" in message, message


# --- The result URL --------------------------------------------------------------------------------


def test_a_success_reply_without_a_url_keeps_the_url_the_submission_returned(
    airflow_db: Any, akool_connection: Any, emulator: Any, emulator_client: EmulatorClient, tmp_path: Path
) -> None:
    @dag(dag_id="output_no_url", schedule=None, start_date=START)
    def output_no_url() -> None:
        for mode, deferrable in MODES.items():
            AkoolImageReageOperator(
                task_id=mode,
                modify_image=sample(emulator, f"portrait-{mode}-emulator-no-url.jpg"),
                face_reage=3,
                output_path=f"{tmp_path}/{mode}/",
                deferrable=deferrable,
                poll_interval=POLL,
            )

    run = run_recorded(output_no_url(), emulator_client)

    assert submissions(run.ledger) == 2
    for mode in MODES:
        result = run.value(mode)
        url = f"{emulator.url}/media/results/{result['id']}.jpg"
        assert result["status"] == "success"
        assert result["url"] == url
        assert run.value(mode, key=RESULT_URL_XCOM_KEY) == url
        assert link_of(run, mode) == url
        assert Path(result["output_path"]).read_bytes()[:2] == b"\xff\xd8"


def test_a_javascript_result_url_never_reaches_xcom_or_the_link_and_the_task_fails_naming_the_id(
    airflow_db: Any, akool_connection: Any, emulator: Any, emulator_client: EmulatorClient
) -> None:
    background: dict[str, Any] = {
        "canvas_size": "64x48",
        "modify_origin_img_size": "32x24",
        "overlay_origin_x": 0,
        "overlay_origin_y": 0,
    }

    @dag(dag_id="output_javascript_url", schedule=None, start_date=START)
    def output_javascript_url() -> None:
        for mode, deferrable in MODES.items():
            waits: dict[str, Any] = {"deferrable": deferrable, "poll_interval": POLL}
            # javascript: in the submission's reply and in every status reply.
            AkoolImageReageOperator(
                task_id=f"reage_{mode}",
                modify_image=sample(emulator, "portrait-emulator-js-url.jpg"),
                face_reage=3,
                **waits,
            )
            # Background change: no URL at submission, none in the success reply.
            AkoolBackgroundChangeOperator(
                task_id=f"background_{mode}",
                origin_img=sample(emulator, "product-emulator-no-url.png"),
                **background,
                **waits,
            )
            AkoolBackgroundChangeOperator(
                task_id=f"background_js_{mode}",
                origin_img=sample(emulator, "product-emulator-js-url.png"),
                **background,
                **waits,
            )
        # Not waiting: the submission's javascript: URL is not returned either.
        AkoolImageReageOperator(
            task_id="reage_no_wait",
            modify_image=sample(emulator, "portrait-emulator-js-url.jpg"),
            face_reage=3,
            wait_for_completion=False,
        )

    run = run_recorded(output_javascript_url(), emulator_client)

    assert submissions(run.ledger) == 7
    for task_id in [f"{kind}_{mode}" for kind in ("reage", "background", "background_js") for mode in MODES]:
        error = run.failure(task_id)
        assert isinstance(error, AkoolResponseError), (task_id, error)
        akool_id = run.value(task_id, key="akool_id")
        assert akool_id in str(error), str(error)
        assert "no usable result URL" in str(error)
        assert run.value(task_id, key=RESULT_URL_XCOM_KEY) is None
        assert link_of(run, task_id) == ""
    no_wait = run.value("reage_no_wait")
    assert no_wait["url"] is None
    assert run.value("reage_no_wait", key=RESULT_URL_XCOM_KEY) is None
    assert link_of(run, "reage_no_wait") == ""


# --- A retry that resumes its recorded job (Airflow 3.3+) ------------------------------------------


@pytest.mark.parametrize("on_disk", ["its_own_result", "another_file"])
def test_a_retry_resuming_its_job_is_not_refused_before_submitting_and_re_keeps_its_own_result(
    akool_connection: Any, emulator: Any, emulator_client: EmulatorClient, tmp_path: Path, on_disk: str
) -> None:
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.operators.base import JOB_RECORD_KEY
    from tests.support.airflow_version import HAS_TASK_STATE_STORE
    from tests.support.task_context import FakeTaskStateStore, RetryTaskInstance, record_of

    portrait = sample(emulator, "portrait.jpg")
    earlier = AkoolHook().submit_image_reage(portrait, 3, [{"path": portrait, "opts": FACE}])
    emulator_client.set_job_status(earlier.id, SUCCESS)
    target = tmp_path / "result.jpg"
    if on_disk == "its_own_result":
        # The earlier try kept the result, then its worker died before the task was marked done.
        with AkoolHook().stream_result(earlier.url or "", headers={}) as chunks:
            target.write_bytes(b"".join(chunks))
    else:
        target.write_bytes(b"another run's result")
    before = target.read_bytes()
    store = FakeTaskStateStore({JOB_RECORD_KEY: record_of(earlier.id, earlier.job_id)})
    operator = AkoolImageReageOperator(
        task_id="retry", modify_image=portrait, face_reage=3, output_path=str(target), poll_interval=POLL
    )

    def run() -> Any:
        return operator.execute({"ti": RetryTaskInstance(), "task_state_store": store})  # type: ignore[arg-type]

    if not HAS_TASK_STATE_STORE:
        # Below 3.3 every try submits anew: the file is there, so it is refused before submitting.
        with pytest.raises(AkoolOutputExistsError, match="no job was submitted"):
            run()
    elif on_disk == "its_own_result":
        result = run()
        assert result["id"] == earlier.id
        assert result["output_path"] == str(target)
    else:
        # Resumed, not refused up front: keeping meets another file and says where the result is.
        with pytest.raises(AkoolOutputExistsError) as raised:
            run()
        assert f"{emulator.url}/media/results/{earlier.id}.jpg" in str(raised.value)
        assert "no job was submitted" not in str(raised.value)
    assert emulator_client.counts()["imgreage"] == 1  # never a second job
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.jpg"]
