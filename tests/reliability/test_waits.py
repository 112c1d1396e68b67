"""
How long a wait lasts and how often it asks Akool, the same in every mode: ``execution_timeout`` ends a
deferred try as it ends one in the worker, ``poll_interval`` is the pace of every mode, and a job that
vanished from Akool is reported as such.

Runs real DAGs through ``dag.test()`` against the emulator; jobs of an ``emulator-stuck`` input stay
processing, so only a deadline ends their wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowTaskTimeout
from airflow.sdk import dag

from airflow_provider_akool.emulator import EmulatorClient
from airflow_provider_akool.exceptions import AkoolJobTimeoutError, AkoolNotFoundError
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from airflow_provider_akool.triggers.reage import AkoolReageTrigger
from airflow_provider_akool.wait import EXECUTION_TIMEOUT, JobSnapshot, Waiter
from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.ledger import FAILED, PROCESSING
from tests.support.samples import sample

try:  # Airflow 3.2+
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow 3.1
    from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]

START = pendulum.datetime(2026, 1, 1, tz="UTC")
EXECUTION_TIMEOUT_S = 3.0
#: The wait's own timeout: far past execution_timeout, so only execution_timeout can end the try in time.
LONG_TIMEOUT = 60.0
#: What a try may take past its execution_timeout: the resume (a new task process: seconds on a loaded
#: 2-core machine), a cancel request, Airflow's bookkeeping. Still far below LONG_TIMEOUT, so a pass means
#: execution_timeout ended the try.
SLACK = 20.0


def stuck(emulator: Any) -> str:
    return sample(emulator, "portrait-emulator-stuck.jpg")


def submit_stuck_job(emulator: Any) -> JobSnapshot:
    """Submit an image reage job that stays processing (for the sensors, which do not submit)."""
    hook = AkoolHook()
    face = hook.detect_faces(stuck(emulator), single_face=True).target_image()
    job = hook.submit_image_reage(stuck(emulator), 5, face)
    return JobSnapshot(id=job.id, status=None, job_id=job.job_id)


def poll_times(ledger: dict[str, Any], akool_id: str) -> list[float]:
    """When (emulator time) each listbyids request that asked for ``akool_id`` arrived."""
    polls = [r for r in ledger["requests"] if r["endpoint"] == "listbyids"]
    assert len(polls) == len(ledger["listbyids_ids"])
    return [r["at"] for r, ids in zip(polls, ledger["listbyids_ids"], strict=True) if akool_id in ids]


def request_times(ledger: dict[str, Any], endpoint: str) -> list[float]:
    return [r["at"] for r in ledger["requests"] if r["endpoint"] == endpoint]


# --- 1. execution_timeout ends a deferred try too -------------------------------------------------


def run_one(emulator_client: EmulatorClient, make: Callable[[], Any], dag_id: str) -> RecordedRun:
    """Run a DAG of the one task ``make()`` builds."""

    @dag(dag_id=f"waits_{dag_id}", schedule=None, start_date=START)
    def one() -> None:
        make()

    return run_recorded(one(), emulator_client)


def reage_task(emulator: Any, task_id: str, **kwargs: Any) -> AkoolImageReageOperator:
    options: dict[str, Any] = {
        "poll_interval": 0.5,
        "timeout": LONG_TIMEOUT,
        "execution_timeout": timedelta(seconds=EXECUTION_TIMEOUT_S),
        "retries": 0,
        **kwargs,
    }
    return AkoolImageReageOperator(task_id=task_id, modify_image=stuck(emulator), face_reage=5, **options)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "worker"])
def test_a_reage_task_fails_at_its_execution_timeout_and_its_job_is_cancelled(
    airflow_db: Any, emulator: Any, emulator_client: EmulatorClient, akool_connection: Any, deferrable: bool
) -> None:
    mode = "deferred" if deferrable else "worker"
    run = run_one(emulator_client, lambda: reage_task(emulator, "reage", deferrable=deferrable), mode)

    error = run.failure("reage")
    assert isinstance(error, AirflowTaskTimeout), repr(error)
    ledger = run.ledger
    (job,) = ledger["jobs"].values()
    # Cancelled on Akool: job/del sent once, the job failed by it, nothing left billing.
    assert ledger["counts"]["job_del"] == 1
    assert job["cancelled"]
    assert job["status"] == FAILED
    (submitted,) = request_times(ledger, "imgreage")
    (cancelled,) = request_times(ledger, "job_del")
    # At execution_timeout (AirflowTaskTimeout above), not at the wait's own timeout (60 s), and after the
    # wait polled. (No lower bound in seconds: execution_timeout counts from the try's start, and a busy
    # machine may take any part of it to submit.)
    assert cancelled - submitted <= EXECUTION_TIMEOUT_S + SLACK
    assert any(submitted < at < cancelled for at in request_times(ledger, "listbyids"))
    if deferrable:
        assert "execution_timeout" in str(error)
        assert "cancelled job" in str(error)


def test_a_background_change_deferred_past_its_execution_timeout_says_it_may_still_be_billed(
    airflow_db: Any, emulator: Any, emulator_client: EmulatorClient, akool_connection: Any
) -> None:
    def make() -> AkoolBackgroundChangeOperator:
        return AkoolBackgroundChangeOperator(
            task_id="change",
            origin_img=sample(emulator, "product-emulator-stuck.png"),
            canvas_size="512x512",
            modify_origin_img_size="256x256",
            overlay_origin_x=0,
            overlay_origin_y=0,
            poll_interval=0.5,
            timeout=LONG_TIMEOUT,
            execution_timeout=timedelta(seconds=EXECUTION_TIMEOUT_S),
            deferrable=True,
            retries=0,
        )

    run = run_one(emulator_client, make, "background_change")

    error = run.failure("change")
    assert isinstance(error, AirflowTaskTimeout), repr(error)
    assert "may still finish and be billed" in str(error)
    # The polls stopped at execution_timeout: every 0.5 s (a pause shortened to half at most, to reach the
    # grid) for 3 s, and a busy machine only makes them fewer; until the wait's own timeout they would be
    # a hundred.
    assert len(request_times(run.ledger, "infobymodelid")) <= EXECUTION_TIMEOUT_S / (0.5 / 2) + 2


def test_a_deferred_sensor_fails_at_its_execution_timeout_and_cancels_nothing(
    airflow_db: Any, emulator: Any, emulator_client: EmulatorClient, akool_connection: Any
) -> None:
    job = submit_stuck_job(emulator)
    sensor = {
        "task_id": "sensor",
        "result_ids": [job.id],
        "poke_interval": 0.5,
        "timeout": LONG_TIMEOUT,
        "execution_timeout": timedelta(seconds=EXECUTION_TIMEOUT_S),
        "deferrable": True,
        "retries": 0,
    }
    run = run_one(emulator_client, lambda: AkoolReageSensor(**sensor), "sensor_execution_timeout")

    error = run.failure("sensor")
    assert isinstance(error, AirflowTaskTimeout), repr(error)
    assert not isinstance(error, AirflowSensorTimeout)
    # The polls stopped at execution_timeout (see the background change test above).
    assert len(poll_times(run.ledger, job.id)) <= EXECUTION_TIMEOUT_S / (0.5 / 2) + 2
    # Not the sensor's job: left running.
    assert run.ledger["counts"]["job_del"] == 0
    assert run.ledger["jobs"][job.id]["status"] == PROCESSING


async def test_a_trigger_rebuilt_from_its_kwargs_keeps_the_execution_deadline_and_says_it_ended_the_wait(
    emulator: Any, emulator_client: EmulatorClient, akool_connection: Any
) -> None:
    job = await asyncio.to_thread(submit_stuck_job, emulator)
    now = time.time()
    original = AkoolReageTrigger(
        result_ids=[job.id],
        poll_interval=0.5,
        deadline=now + LONG_TIMEOUT,
        execution_deadline=now + EXECUTION_TIMEOUT_S,
        job_id_of={job.id: job.job_id},
        started_at=now,
    )
    _path, kwargs = original.serialize()
    assert kwargs["execution_deadline"] == now + EXECUTION_TIMEOUT_S
    # What a restarted triggerer does: rebuild the trigger from its stored kwargs, later.
    await asyncio.sleep(1)
    rebuilt = AkoolReageTrigger(**deserialize(serialize(kwargs)))

    events = [event.payload async for event in rebuilt.run()]
    elapsed = time.time() - now

    (payload,) = events
    assert payload["status"] == "timeout"
    assert payload["deadline"] == EXECUTION_TIMEOUT
    # Not before the original execution deadline (a lower bound: a busy machine only makes it later), and
    # that one, not a fresh one from the rebuild.
    assert elapsed >= EXECUTION_TIMEOUT_S - 0.1
    assert rebuilt.execution_deadline == now + EXECUTION_TIMEOUT_S
    # A trigger rebuilt after that deadline ends at its first look.
    before = (await asyncio.to_thread(emulator_client.counts))["listbyids"]
    late = AkoolReageTrigger(**deserialize(serialize(kwargs)))
    assert [event.payload["status"] async for event in late.run()] == ["timeout"]
    assert (await asyncio.to_thread(emulator_client.counts))["listbyids"] - before == 1

    # The task resumes on a fresh operator instance with nothing but the event.
    fresh = AkoolImageReageOperator(task_id="resumed", modify_image=stuck(emulator), face_reage=5)
    with pytest.raises(AirflowTaskTimeout, match="execution_timeout"):
        await asyncio.to_thread(fresh.execute_complete, {"ti": _NoXCom()}, payload)
    ledger = await asyncio.to_thread(emulator_client.ledger)
    assert ledger["jobs"][job.id]["cancelled"]


def test_triggers_without_the_new_kwargs_still_rebuild_and_serialize_as_before() -> None:
    old_kwargs = {
        "result_ids": ["a" * 24],
        "akool_conn_id": "akool_default",
        "poll_interval": 10.0,
        "deadline": 2e9,
        "not_found_grace": 60.0,
        "started_at": 1.9e9,
        "max_poll_errors": 10,
    }
    rebuilt = AkoolReageTrigger(**old_kwargs)
    assert rebuilt.execution_deadline is None
    assert rebuilt.first_poll_at is None
    assert not rebuilt.adaptive_polling
    # Only what is set is serialized, so an earlier version can rebuild what this one defers.
    assert rebuilt.serialize()[1] == old_kwargs
    adaptive = AkoolReageTrigger(**old_kwargs, adaptive_polling=True, first_poll_at=1.95e9)
    assert adaptive.serialize()[1] == {**old_kwargs, "adaptive_polling": True, "first_poll_at": 1.95e9}


class _NoXCom:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


# --- 2. poll_interval is the pace of every mode ------------------------------------------------------

INTERVAL = 4.0
WINDOW = 12.0


def test_every_mode_polls_at_poll_interval_and_adaptive_polling_is_an_opt_in(
    airflow_db: Any, emulator: Any, emulator_client: EmulatorClient, akool_connection: Any
) -> None:
    sensor_jobs = {mode: submit_stuck_job(emulator) for mode in ("poke", "deferred")}
    reage = {"modify_image": stuck(emulator), "face_reage": 5, "timeout": WINDOW, "retries": 0}

    @dag(dag_id="waits_poll_interval", schedule=None, start_date=START)
    def pace() -> None:
        AkoolImageReageOperator(task_id="worker", poll_interval=INTERVAL, deferrable=False, **reage)
        AkoolImageReageOperator(task_id="deferred", poll_interval=INTERVAL, deferrable=True, **reage)
        for mode, job in sensor_jobs.items():
            AkoolReageSensor(
                task_id=f"sensor_{mode}",
                result_ids=[job.id],
                poke_interval=INTERVAL,
                timeout=WINDOW,
                deferrable=mode == "deferred",
                retries=0,
            )
        # The switch, side by side with the default at a longer interval.
        slow = {"poll_interval": 2 * INTERVAL, "deferrable": True, **reage}
        AkoolImageReageOperator(task_id="fixed_slow", **slow)
        AkoolImageReageOperator(task_id="adaptive_slow", adaptive_polling=True, **slow)

    run = run_recorded(pace(), emulator_client)

    ledger = run.ledger
    ids = {task_id: run.value(task_id, key="akool_id") for task_id in ("worker", "deferred")}
    ids |= {f"sensor_{mode}": job.id for mode, job in sensor_jobs.items()}
    ids |= {task_id: run.value(task_id, key="akool_id") for task_id in ("fixed_slow", "adaptive_slow")}
    polls = {task_id: poll_times(ledger, akool_id) for task_id, akool_id in ids.items()}
    for task_id in ("worker", "deferred", "fixed_slow", "adaptive_slow"):
        assert isinstance(run.failure(task_id), AkoolJobTimeoutError)
    for task_id in ("sensor_poke", "sensor_deferred"):
        assert isinstance(run.failure(task_id), AirflowSensorTimeout)

    # Every mode: at most one poll per interval over the window (and one at the deadline); the shared
    # poller may shorten one pause, to no less than half, to put a deferred wait on its grid.
    for task_id in ("worker", "deferred", "sensor_poke", "sensor_deferred"):
        times = polls[task_id]
        assert len(times) <= WINDOW / INTERVAL + 2, (task_id, times)
        assert len(times) >= WINDOW / INTERVAL - 1, (task_id, times)
    # The trigger's first poll comes a poll_interval after the check made before deferring.
    for task_id in ("deferred", "sensor_deferred"):
        check, first = polls[task_id][:2]
        assert first - check >= INTERVAL - 0.1, (task_id, polls[task_id])
    # Adaptive polling does what it says: more polls of a young job than the fixed interval.
    assert len(polls["fixed_slow"]) <= WINDOW / (2 * INTERVAL) + 2, polls["fixed_slow"]
    assert len(polls["adaptive_slow"]) >= len(polls["fixed_slow"]) + 2, polls


def test_the_first_poll_after_a_429_on_the_check_before_deferring_waits_for_retry_after(
    airflow_db: Any, emulator: Any, emulator_client: EmulatorClient, akool_connection: Any
) -> None:
    retry_after = 3.0
    emulator_client.add_fault("http_429", count=1, path="listbyids", retry_after=retry_after)
    run = run_one(
        emulator_client,
        lambda: reage_task(
            emulator, "reage", deferrable=True, execution_timeout=timedelta(seconds=retry_after + 2)
        ),
        "retry_after_before_deferring",
    )

    times = request_times(run.ledger, "listbyids")
    statuses = [r["http_status"] for r in run.ledger["requests"] if r["endpoint"] == "listbyids"]
    assert statuses[0] == 429
    assert times[1] - times[0] >= retry_after - 0.05, times


# --- 3. A job that vanished is reported as such ------------------------------------------------------


def test_a_job_that_was_known_and_then_vanished_is_reported_as_vanished_not_as_a_bad_id(
    emulator: Any, emulator_client: EmulatorClient, akool_connection: Any
) -> None:
    job = submit_stuck_job(emulator)
    never = "f" * 24
    hook = AkoolHook(retry_limit=1)
    started = time.time()
    waiter = Waiter(ids=[job.id, never], poll_interval=0.1, started_at=started, not_found_grace=0.5)

    def poll() -> dict[str, JobSnapshot]:
        results = hook.get_reage_results([job.id, never])
        return {i: JobSnapshot.of_reage(r) for i, r in results.items()}

    assert waiter.polled(poll(), started) is None  # known, processing; the other id is in its grace
    emulator_client.delete_job(job.id)
    # Judged as at a time past the grace: the Waiter takes the time it judges at, no need to sleep.
    event = waiter.polled(poll(), started + 0.6)

    assert event is not None
    assert event.status == "not_found"
    message = event.message
    assert f"job {job.id}" in message
    assert "was known to Akool, last as queued" in message or "last as processing" in message
    assert "deleted on Akool, or its result expired" in message
    # The id that never existed still gets the advice to check it, and only it.
    assert f"the id(s) {never} are unknown" in message
    assert message.count("Check the ids") == 1
    with pytest.raises(AkoolNotFoundError, match="vanished"):
        event.raise_for_status()


def test_a_deferred_sensor_reports_a_job_deleted_while_it_waits_as_vanished(
    airflow_db: Any, emulator: Any, emulator_client: EmulatorClient, akool_connection: Any
) -> None:
    job = submit_stuck_job(emulator)
    sensor = {
        "task_id": "sensor",
        "result_ids": [job.id],
        "poke_interval": 0.3,
        "not_found_grace": 0.1,
        "timeout": LONG_TIMEOUT,
        "deferrable": True,
        "retries": 0,
    }

    def delete_once_polled() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # The third poll began: the trigger's own first poll was answered with the job in it.
            if emulator_client.counts()["listbyids"] >= 3:
                emulator_client.delete_job(job.id)
                return
            time.sleep(0.05)

    helper = threading.Thread(target=delete_once_polled)
    helper.start()
    try:
        run = run_one(emulator_client, lambda: AkoolReageSensor(**sensor), "sensor_vanished")
    finally:
        helper.join(30)

    error = run.failure("sensor")
    assert isinstance(error, AkoolNotFoundError), repr(error)
    assert "was known to Akool" in str(error)
    assert "Check the ids" not in str(error)
