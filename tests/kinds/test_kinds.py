"""
The job kinds: one description per kind that operators, sensors and triggers share, triggers that still
rebuild from what earlier versions stored, and a new kind written as one small module (here, this one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from airflow.sdk import dag

from airflow_provider_akool import validation
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.kinds import BACKGROUND_CHANGE, REAGE, JobKind
from airflow_provider_akool.kinds.reage import afetch_reage, fetch_reage, submitted_reage
from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
from airflow_provider_akool.operators.base import AkoolJobOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator, AkoolVideoReageOperator
from airflow_provider_akool.sensors.base import AkoolJobSensor
from airflow_provider_akool.sensors.image_result import AkoolImageResultSensor
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from airflow_provider_akool.triggers.base import AkoolJobTrigger
from airflow_provider_akool.triggers.image_result import AkoolImageResultTrigger
from airflow_provider_akool.triggers.reage import AkoolReageTrigger
from airflow_provider_akool.wait import JobSnapshot
from tests.support.connections import ConnectionFactory
from tests.support.dag_runs import START, run_recorded
from tests.support.samples import sample

ID = "a" * 24


def test_the_operators_sensor_and_trigger_of_a_kind_share_its_one_description() -> None:
    assert {
        AkoolImageReageOperator.kind,
        AkoolVideoReageOperator.kind,
        AkoolReageSensor.kind,
        AkoolReageTrigger.kind,
    } == {REAGE}
    assert {
        AkoolBackgroundChangeOperator.kind,
        AkoolImageResultSensor.kind,
        AkoolImageResultTrigger.kind,
    } == {BACKGROUND_CHANGE}


@pytest.mark.parametrize("kind", [REAGE, BACKGROUND_CHANGE], ids=lambda kind: kind.name)
def test_a_kinds_trigger_path_is_the_class_path_its_trigger_serializes_under(kind: JobKind) -> None:
    trigger_class = kind.trigger_class
    assert trigger_class.kind is kind
    assert trigger_class.for_ids([ID]).serialize()[0] == kind.trigger


# What the provider stored before the kinds (taken from its serialize() output for triggers made by the
# operators and sensors): a triggerer running this version must rebuild them as they were.
STORED_BEFORE_KINDS: list[tuple[str, dict[str, Any]]] = [
    (
        "airflow_provider_akool.triggers.reage.AkoolReageTrigger",
        {
            "result_ids": [ID],
            "akool_conn_id": "akool_default",
            "poll_interval": 5.0,
            "deadline": 2.0,
            "not_found_grace": 60.0,
            "started_at": 1.0,
            "max_poll_errors": 10,
            "job_ids": {ID: "123-4"},
            "adaptive_polling": True,
            "execution_deadline": 3.0,
            "first_poll_at": 4.0,
        },
    ),
    (
        "airflow_provider_akool.triggers.reage.AkoolReageTrigger",
        {
            "result_ids": [ID, "b" * 24],
            "akool_conn_id": "akool_default",
            "poll_interval": 10.0,
            "deadline": None,
            "not_found_grace": 7.0,
            "started_at": 1.0,
            "max_poll_errors": 10,
            "batch_size": 7,
        },
    ),
    (
        "airflow_provider_akool.triggers.image_result.AkoolImageResultTrigger",
        {
            "image_model_id": ID,
            "akool_conn_id": "akool_default",
            "poll_interval": 10.0,
            "deadline": 2.0,
            "not_found_grace": 60.0,
            "started_at": 1.0,
            "max_poll_errors": 10,
            "first_poll_at": 4.0,
            "max_concurrency": 2,
        },
    ),
]


@pytest.mark.parametrize(("classpath", "kwargs"), STORED_BEFORE_KINDS)
def test_triggers_stored_before_the_kinds_rebuild_and_serialize_as_they_were(
    classpath: str, kwargs: dict[str, Any]
) -> None:
    module, _, name = classpath.rpartition(".")
    trigger_class = getattr(__import__(module, fromlist=[name]), name)
    assert trigger_class(**kwargs).serialize() == (classpath, kwargs)


def test_operators_and_sensors_hand_their_trigger_the_kwargs_of_before() -> None:
    job = JobSnapshot(id=ID, status=None, url="http://x", job_id="123-4")
    reage = AkoolImageReageOperator(task_id="r", modify_image="http://x", face_reage=3, poll_interval=5)
    made = reage.make_trigger(
        job, started_at=1.0, deadline=2.0, execution_deadline=3.0, first_poll_at=4.0, adaptive_polling=True
    )
    assert made.serialize() == STORED_BEFORE_KINDS[0]
    sensor = AkoolImageResultSensor(task_id="s", image_model_id=ID)
    _, kwargs = sensor.make_trigger([ID], started_at=1.0, deadline=2.0, first_poll_at=4.0).serialize()
    # A sensor's trigger never gets job_ids: it does not own the job.
    assert "job_ids" not in kwargs
    assert kwargs["not_found_grace"] == 60.0


def test_a_kind_that_cancels_in_one_mode_only_is_refused() -> None:
    with pytest.raises(ValueError, match="both cancel and acancel"):
        JobKind(
            name="half",
            fetch=fetch_reage,
            afetch=afetch_reage,
            submitted=submitted_reage,
            trigger="x.Y",
            cancel=lambda hook, job_ids: None,
        )


# --- A new kind is one small module: this is all it takes ---------------------------------------------
# (It polls reage's endpoint, the one the emulator serves, under a kind of its own that cannot be
# cancelled; a real new kind, say face swap, would bring its own fetch and submission.)

ECHO = JobKind(
    name="echo",
    fetch=fetch_reage,
    afetch=afetch_reage,
    submitted=submitted_reage,
    trigger=f"{__name__}.AkoolEchoTrigger",
)


class AkoolEchoTrigger(AkoolJobTrigger):
    kind = ECHO


class AkoolEchoOperator(AkoolJobOperator):
    template_fields = (*AkoolJobOperator.template_fields, "image")
    kind = ECHO

    def __init__(self, *, image: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image = image

    def validate_inputs(self) -> None:
        self.image = validation.http_url("image", self.image)

    def submit(self, hook: AkoolHook, context: Any) -> JobSnapshot:
        faces = hook.detect_faces(self.image).target_image()
        return self.kind.submitted(hook.submit_image_reage(self.image, 5, faces))


class AkoolEchoSensor(AkoolJobSensor):
    template_fields = ("ids", "akool_conn_id")
    kind = ECHO

    def __init__(self, *, ids: Sequence[str] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ids = ids

    def ids_to_wait_for(self) -> list[str]:
        return validation.collect_ids("ids", self.ids, key="id")


def test_a_new_kind_of_one_module_waits_in_every_mode(
    airflow_db: Any, emulator: Any, akool_connection: ConnectionFactory
) -> None:
    @dag(dag_id="new_kind", schedule=None, start_date=START)
    def new_kind() -> None:
        for mode, deferrable in (("sync", False), ("defer", True)):
            echo = AkoolEchoOperator(
                task_id=f"echo_{mode}",
                image=sample(emulator, "portrait.jpg"),
                poll_interval=0.2,
                deferrable=deferrable,
            )
            AkoolEchoSensor(
                task_id=f"sensor_{mode}", ids=echo.output, poke_interval=0.2, deferrable=deferrable
            )

    run = run_recorded(new_kind(), emulator.client)

    assert run.state == "success", run.states
    for mode in ("sync", "defer"):
        result = run.value(f"echo_{mode}")
        assert result["status"] == "success"
        assert result["job_id"]
        assert run.value(f"sensor_{mode}") == [{**result, "output_path": None}]
