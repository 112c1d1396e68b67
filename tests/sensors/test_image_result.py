"""AkoolImageResultSensor: poke and deferrable mode through ``dag.test()`` against the emulator."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred
from airflow.sdk import DAG, task

from airflow_provider_akool.emulator import EmulatorClient, EmulatorServer
from airflow_provider_akool.exceptions import (
    AkoolError,
    AkoolInvalidTokenError,
    AkoolJobFailedError,
    AkoolValidationError,
)
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.sensors.image_result import AkoolImageResultSensor
from airflow_provider_akool.triggers.image_result import AkoolImageResultTrigger, with_job_fields
from tests.support.dag_runs import run_dag

IMAGE_ID = "65a1b2c3d4e5f60718293a4b"
#: The emulator's URL for tasks that dag.test() runs, which cannot take fixtures.
EMULATOR_URL: list[str] = []


@pytest.fixture(autouse=True)
def _emulator_url(emulator: EmulatorServer) -> None:
    EMULATOR_URL[:] = [emulator.url]


def submit(emulator: EmulatorServer | str, origin: str = "product.png") -> str:
    base_url = emulator if isinstance(emulator, str) else emulator.url
    job = AkoolHook().submit_background_change(
        origin_img=f"{base_url}/media/samples/{origin}",
        canvas_size="64x48",
        modify_origin_img_size="32x24",
        overlay_origin_x=0,
        overlay_origin_y=0,
        color_code="#aafbe3",
    )
    return job.id


def sensor_dag(origin: str, **sensor_kwargs: Any) -> DAG:
    """
    Submit a background change in one task and wait for it with the sensor in the next, as a pipeline does.

    The id reaches the sensor through a template, so the job is fresh when the sensor starts. Each DAG gets
    a unique id, since each test serializes its DAG into the shared database.
    """
    with DAG(f"akool_image_result_{uuid.uuid4().hex[:10]}", schedule=None) as dag:

        @task(task_id="submit")
        def submit_task() -> str:
            return submit(EMULATOR_URL[0], origin)

        sensor = AkoolImageResultSensor(
            task_id="wait",
            image_model_id="{{ ti.xcom_pull(task_ids='submit') }}",
            poke_interval=0.1,
            **sensor_kwargs,
        )
        submit_task() >> sensor
    return dag


def task_outcome(dag_run: Any) -> tuple[str, Any]:
    """The sensor's final state and its ``return_value`` XCom."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    state = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}["wait"]
    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, key="return_value", task_ids="wait", dag_ids=dag_run.dag_id
            )
        ).first()
    return str(state), (XComModel.deserialize_value(row) if row is not None else None)


@pytest.mark.usefixtures("airflow_db", "akool_connection")
class TestThroughDagTest:
    @pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
    def test_success_returns_the_result_dict(
        self, emulator: EmulatorServer, emulator_client: EmulatorClient, deferrable: bool
    ) -> None:
        dag_run = run_dag(sensor_dag("product.png", deferrable=deferrable, timeout=60))
        state, value = task_outcome(dag_run)
        assert state == "success"
        (image_model_id,) = emulator_client.ledger()["jobs"]
        assert value == {
            "id": image_model_id,
            "job_id": None,
            "status": "success",
            "url": f"{emulator.url}/media/results/{image_model_id}.png",
            "output_path": None,
        }
        # At least the sensor's own check; how many more depends on how fast dag.test() reaches the sensor
        # (on Airflow 3.1 the job is often done by then); the trigger tests prove waiting through polls.
        assert emulator_client.counts()["infobymodelid"] >= 1

    @pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
    def test_a_failed_job_fails_the_task(
        self, emulator: EmulatorServer, emulator_client: EmulatorClient, deferrable: bool
    ) -> None:
        dag_run = run_dag(sensor_dag("emulator-fail.png", deferrable=deferrable, timeout=60))
        state, value = task_outcome(dag_run)
        assert state == "failed"
        assert value is None

    def test_a_deferred_wait_past_the_sensor_timeout_fails_the_task(self, emulator: EmulatorServer) -> None:
        started = time.monotonic()
        dag_run = run_dag(sensor_dag("emulator-stuck.png", deferrable=True, timeout=1))
        assert task_outcome(dag_run)[0] == "failed"
        assert time.monotonic() - started < 30


@pytest.mark.usefixtures("akool_connection")
class TestExecute:
    def test_a_finished_job_is_returned_without_deferring(
        self, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        image_model_id = submit(emulator)
        emulator_client.advance_clock(2)
        sensor = AkoolImageResultSensor(task_id="wait", image_model_id=image_model_id, deferrable=True)
        assert sensor.execute({})["status"] == "success"
        assert emulator_client.counts()["infobymodelid"] == 1

    def test_an_unfinished_job_defers_with_the_timeout_as_an_absolute_deadline(
        self, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        # Unfinished whatever the load: the job would be done 0.4 s after the submit on a running clock.
        emulator_client.freeze_clock()
        image_model_id = submit(emulator)
        sensor = AkoolImageResultSensor(
            task_id="wait", image_model_id=image_model_id, deferrable=True, poke_interval=15, timeout=600
        )
        before = time.time()
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute({})
        assert deferred.value.timeout is None
        assert deferred.value.method_name == "execute_complete"
        trigger = deferred.value.trigger
        assert isinstance(trigger, AkoolImageResultTrigger)
        _, kwargs = trigger.serialize()
        assert kwargs["image_model_id"] == image_model_id
        assert kwargs["poll_interval"] == 15
        assert before + 600 <= kwargs["deadline"] <= time.time() + 600

    def test_a_failed_job_raises_with_akools_reasons_in_poke_mode(
        self, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        image_model_id = submit(emulator, origin="emulator-fail.png")
        emulator_client.advance_clock(2)
        sensor = AkoolImageResultSensor(task_id="wait", image_model_id=image_model_id)
        with pytest.raises(AkoolJobFailedError) as raised:
            sensor.execute({})
        assert raised.value.akool_id == image_model_id
        assert raised.value.reasons[0]["code"] == 1206  # type: ignore[index]
        assert image_model_id in str(raised.value)

    def test_the_return_dict_of_the_operator_is_taken_as_the_id(
        self, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        image_model_id = submit(emulator)
        emulator_client.advance_clock(2)
        upstream = {
            "id": image_model_id,
            "job_id": None,
            "status": "queued",
            "url": None,
            "output_path": None,
        }
        sensor = AkoolImageResultSensor(task_id="wait", image_model_id=upstream)
        assert sensor.execute({})["id"] == image_model_id

    @pytest.mark.parametrize("image_model_id", ["", "  ", ["a", "b"], "a,b", None])
    def test_a_bad_id_is_refused_before_any_request(
        self, emulator_client: EmulatorClient, image_model_id: Any
    ) -> None:
        sensor = AkoolImageResultSensor(task_id="wait", image_model_id=image_model_id)
        with pytest.raises(AkoolValidationError, match="image_model_id"):
            sensor.execute({})
        assert sum(emulator_client.counts().values()) == 0


class TestExecuteComplete:
    """A fresh sensor finishes from the event alone (dag.test() in 3.3.2 passes no defer kwargs)."""

    def sensor(self) -> AkoolImageResultSensor:
        return AkoolImageResultSensor(task_id="wait", image_model_id="{{ not rendered }}")

    def event(
        self, status: str = "success", job_status: str | None = "success", **fields: Any
    ) -> dict[str, Any]:
        """An event as the trigger sends it: the shared wait schema plus the job's fields on top."""
        url = f"https://cdn.example/{IMAGE_ID}.png" if job_status == "success" else None
        reasons = fields.pop("reasons", [])
        payload = {
            "status": status,
            "message": fields.pop("message", f"Akool job(s) {IMAGE_ID} {status}"),
            "results": [
                {"id": IMAGE_ID, "job_id": None, "status": job_status, "url": url, "reasons": reasons}
            ],
            "error": fields.pop("error", None),
        }
        return with_job_fields(payload)

    def test_success_takes_the_id_and_url_from_the_event(self) -> None:
        assert self.sensor().execute_complete({}, self.event()) == {
            "id": IMAGE_ID,
            "job_id": None,
            "status": "success",
            "url": f"https://cdn.example/{IMAGE_ID}.png",
            "output_path": None,
        }

    def test_failed_raises_job_failed_with_the_reasons(self) -> None:
        reasons = [{"code": 1206, "message": "background change processing error"}]
        with pytest.raises(AkoolJobFailedError) as raised:
            self.sensor().execute_complete({}, self.event("failed", "failed", reasons=reasons))
        assert raised.value.akool_id == IMAGE_ID
        assert raised.value.reasons == reasons

    def test_timeout_raises_the_sensor_timeout(self) -> None:
        with pytest.raises(AirflowSensorTimeout, match="did not finish"):
            self.sensor().execute_complete(
                {}, self.event("timeout", "processing", message="did not finish within 60 s")
            )

    def test_an_error_is_raised_as_the_class_the_event_names(self) -> None:
        error = {"type": "AkoolInvalidTokenError", "code": 1101, "endpoint": "infobymodelid", "message": "x"}
        with pytest.raises(AkoolInvalidTokenError):
            self.sensor().execute_complete({}, self.event("error", "processing", error=error))

    @pytest.mark.parametrize(
        "event", [None, {}, {"status": "done", "id": IMAGE_ID}, {"status": "success"}, "success"]
    )
    def test_an_event_it_does_not_understand_is_an_error(self, event: Any) -> None:
        with pytest.raises(AkoolError, match="does not understand"):
            self.sensor().execute_complete({}, event)
