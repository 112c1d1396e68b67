"""
One unreadable ``listbyids`` entry fails only the task whose job it is: ``dag.test()`` runs of a mapped
reage (worker and deferred) and of reage sensors, with one job's entry poisoned by the emulator.

``dag.test()`` runs one task (and its trigger) at a time, so tasks never share a ``listbyids`` request
here as they do in a triggerer (that case is ``tests/triggers/test_poller.py``). The poisoned entry is
therefore a *stray* one (``emulator-poison-status-stray``): it comes in every reply, asked for or not,
which is exactly what the other tasks' polls meet when their ids share a batch with the poisoned job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from airflow.sdk import dag

from airflow_provider_akool import wait
from airflow_provider_akool.exceptions import AkoolUnreadableResultError
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.ledger import SUCCESS
from tests.support.samples import sample

START = pendulum.datetime(2026, 1, 1, tz="UTC")
POLL = 0.1
POISONED_IMAGE = "portrait-emulator-poison-status-stray.jpg"
MODES = ("sync", "defer")


@pytest.fixture(scope="module")
def short_backoff() -> Iterator[None]:
    """Cap the waits' backoff at the poll interval, so an error budget of 10 polls takes about a second."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wait, "MAX_POLL_BACKOFF", POLL)
        yield


@pytest.fixture(scope="module")
def poisoned_run(module_emulator: Any, short_backoff: None) -> tuple[RecordedRun, dict[str, str]]:
    emulator = module_emulator
    hook = AkoolHook()

    def submit(name: str) -> str:
        url = sample(emulator, name)
        return hook.submit_image_reage(url, 10, hook.detect_faces(url).target_image()).id

    # Jobs the sensors watch, submitted outside the DAG (a sensor does not own them).
    watched = {"good": submit("portrait-sensed.jpg"), "poisoned": submit("sensed-" + POISONED_IMAGE)}
    hook.close()
    images = [sample(emulator, "portrait-a.jpg"), sample(emulator, POISONED_IMAGE), sample(emulator, "b.jpg")]

    @dag(dag_id="reliability_poisoned_entries", schedule=None, start_date=START)
    def reliability_poisoned_entries() -> None:
        for mode in MODES:
            deferrable = mode == "defer"
            AkoolImageReageOperator.partial(
                task_id=f"reage_{mode}", face_reage=5, poll_interval=POLL, deferrable=deferrable
            ).expand(modify_image=images)
            sensing = {"poke_interval": POLL, "deferrable": deferrable}
            AkoolReageSensor(
                task_id=f"sense_both_{mode}", result_ids=[watched["good"], watched["poisoned"]], **sensing
            )
            AkoolReageSensor(task_id=f"sense_good_{mode}", result_ids=[watched["good"]], **sensing)

    return run_recorded(reliability_poisoned_entries(), emulator.client), watched


@pytest.mark.parametrize("mode", MODES)
def test_only_the_mapped_task_of_the_poisoned_job_fails(
    poisoned_run: tuple[RecordedRun, dict[str, str]], mode: str
) -> None:
    run, _ = poisoned_run
    task_id = f"reage_{mode}"

    assert run.states[(task_id, 0)] == "success"
    assert run.states[(task_id, 2)] == "success"
    for index in (0, 2):
        assert run.job(run.value(task_id, index)["id"])["status"] == SUCCESS
    error = run.failure(task_id, 1)
    assert isinstance(error, AkoolUnreadableResultError), error
    poisoned = run.value(task_id, 1, key="akool_id")
    assert error.akool_id == poisoned
    assert f"the entry of {poisoned} has faceswap_status 7" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_sensor_fails_on_the_poisoned_id_and_one_without_it_succeeds(
    poisoned_run: tuple[RecordedRun, dict[str, str]], mode: str
) -> None:
    run, watched = poisoned_run

    error = run.failure(f"sense_both_{mode}")
    assert isinstance(error, AkoolUnreadableResultError), error
    assert error.akool_id == watched["poisoned"]
    assert watched["good"] not in str(error).split("stopped:")[-1]
    assert run.value(f"sense_good_{mode}")[0]["id"] == watched["good"]
    assert run.value(f"sense_good_{mode}")[0]["status"] == "success"
