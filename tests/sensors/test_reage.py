"""AkoolReageSensor run by ``dag.test()`` against the emulator, in poke, reschedule and deferrable mode."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow.sdk import dag, task

from airflow_provider_akool.exceptions import AkoolJobFailedError, AkoolNotFoundError, AkoolValidationError
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from tests.support.dag_runs import START, RecordedRun, run_recorded
from tests.support.samples import sample

POLL = 0.2
UNKNOWN_ID = "0123456789abcdef01234567"
MODES = {"poke": {"mode": "poke"}, "reschedule": {"mode": "reschedule"}, "defer": {"deferrable": True}}


@pytest.fixture(scope="module")
def jobs(module_emulator: Any) -> dict[str, Any]:
    """Reage jobs submitted outside the DAG: the sensor watches jobs it does not own."""
    hook = AkoolHook()

    def submit(name: str) -> dict[str, str | None]:
        url = sample(module_emulator, name)
        job = hook.submit_image_reage(url, 10, hook.detect_faces(url).target_image())
        return {"id": job.id, "job_id": job.job_id, "url": job.url}

    submitted = {
        "ok1": submit("portrait-1.jpg"),
        "ok2": submit("portrait-2.jpg"),
        "ok3": submit("portrait-3.jpg"),
        "fail": submit("portrait-emulator-fail.jpg"),
        "stuck": submit("portrait-emulator-stuck.jpg"),
    }
    hook.close()
    return submitted


@pytest.fixture(scope="module")
def sensed(module_emulator: Any, jobs: dict[str, Any]) -> RecordedRun:
    ids = {name: job["id"] for name, job in jobs.items()}

    @dag(dag_id="reage_sensed", schedule=None, start_date=START, params={"one_id": ids["ok3"]})
    def reage_sensed() -> None:
        @task
        def a_submission() -> dict[str, Any]:
            return {"id": ids["ok2"], "job_id": jobs["ok2"]["job_id"], "status": "queued"}

        submission = a_submission()
        for name, mode in MODES.items():
            waits = {"poke_interval": POLL, **mode}
            AkoolReageSensor(task_id=f"many_{name}", result_ids=[ids["ok2"], ids["ok1"], ids["ok3"]], **waits)
            AkoolReageSensor(task_id=f"xcom_{name}", result_ids=submission, **waits)
            AkoolReageSensor(task_id=f"template_{name}", result_ids="{{ params.one_id }}", **waits)
            AkoolReageSensor(task_id=f"fails_{name}", result_ids=[ids["ok1"], ids["fail"]], **waits)
            AkoolReageSensor(
                task_id=f"unknown_{name}", result_ids=[ids["ok1"], UNKNOWN_ID], not_found_grace=0.5, **waits
            )
            AkoolReageSensor(task_id=f"timeout_{name}", result_ids=ids["stuck"], timeout=1, **waits)

    return run_recorded(reage_sensed(), module_emulator.client)


def expected(job: dict[str, Any]) -> dict[str, Any]:
    return {**job, "status": "success", "output_path": None}


@pytest.mark.parametrize("mode", MODES)
def test_returns_every_result_in_the_order_given(
    sensed: RecordedRun, jobs: dict[str, Any], mode: str
) -> None:
    assert sensed.value(f"many_{mode}") == [
        expected(jobs["ok2"]),
        expected(jobs["ok1"]),
        expected(jobs["ok3"]),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_takes_an_xcom_of_a_submission_and_a_templated_id(
    sensed: RecordedRun, jobs: dict[str, Any], mode: str
) -> None:
    assert sensed.value(f"xcom_{mode}") == [expected(jobs["ok2"])]
    assert sensed.value(f"template_{mode}") == [expected(jobs["ok3"])]


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_job_fails_the_sensor(sensed: RecordedRun, jobs: dict[str, Any], mode: str) -> None:
    error = sensed.failure(f"fails_{mode}")

    assert isinstance(error, AkoolJobFailedError)
    assert (error.akool_id, error.job_id) == (jobs["fail"]["id"], jobs["fail"]["job_id"])
    assert "status 4" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_an_unknown_id_fails_after_the_grace_never_passes(sensed: RecordedRun, mode: str) -> None:
    error = sensed.failure(f"unknown_{mode}")

    assert isinstance(error, AkoolNotFoundError)
    assert UNKNOWN_ID in str(error)
    assert "grace 0.5 s" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_timeout_fails_the_sensor_and_leaves_the_job_running(
    sensed: RecordedRun, jobs: dict[str, Any], mode: str
) -> None:
    assert isinstance(sensed.failure(f"timeout_{mode}"), AirflowSensorTimeout)
    stuck = sensed.job(jobs["stuck"]["id"])
    assert (stuck["status"], stuck["cancelled"]) == (2, False)
    assert sensed.ledger["counts"]["job_del"] == 0


def test_bad_input_fails_before_any_request(module_emulator: Any, emulator_client: Any) -> None:
    cases = {
        "empty": ("result_ids", {"result_ids": []}),
        "commas": ("result_ids", {"result_ids": "a,b"}),
        "not_an_id": ("result_ids", {"result_ids": [{"job_id": "x"}]}),
        "grace": ("not_found_grace", {"result_ids": UNKNOWN_ID, "not_found_grace": "soon"}),
    }

    @dag(dag_id="reage_sensor_bad_input", schedule=None, start_date=START)
    def reage_sensor_bad_input() -> None:
        for name, (_, kwargs) in cases.items():
            for deferrable in (False, True):
                AkoolReageSensor(task_id=f"{name}_{deferrable}", deferrable=deferrable, **kwargs)

    run = run_recorded(reage_sensor_bad_input(), emulator_client)

    for name, (parameter, _) in cases.items():
        for deferrable in (False, True):
            error = run.failure(f"{name}_{deferrable}")
            assert isinstance(error, AkoolValidationError), error
            assert f"{parameter} must be" in str(error)
    assert run.ledger["requests"] == []
