"""
The job kinds: one description per kind that operators, sensors and triggers share, triggers that still
rebuild from what earlier versions stored, and a new kind written as one small module (here, this one).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from airflow.sdk import dag

from airflow_provider_akool.emulator import EmulatorServer
from airflow_provider_akool.kinds import BACKGROUND_CHANGE, REAGE, JobKind
from airflow_provider_akool.kinds.base import KIND_TRIGGER, kind_named, register
from airflow_provider_akool.kinds.reage import afetch_reage, fetch_reage, submitted_reage
from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator, AkoolVideoReageOperator
from airflow_provider_akool.sensors.image_result import AkoolImageResultSensor
from airflow_provider_akool.sensors.reage import AkoolReageSensor
from airflow_provider_akool.triggers.base import AkoolJobTrigger, AkoolKindTrigger
from airflow_provider_akool.triggers.image_result import AkoolImageResultTrigger
from airflow_provider_akool.triggers.reage import AkoolReageTrigger
from airflow_provider_akool.wait import JobSnapshot
from tests.kinds.echo_kind import ECHO, AkoolEchoOperator, AkoolEchoSensor
from tests.support import views_auth as auth_bench
from tests.support import webhook_receiver as receiver_bench
from tests.support.connections import ConnectionFactory
from tests.support.dag_runs import START, run_recorded
from tests.support.samples import sample
from tests.support.views_auth import token
from tests.support.webhook_receiver import completes_on_callback

#: Fixtures asked for by name: the views' auth manager; the receiver's emulator, app and connection.
views_auth = auth_bench.auth
wh_emulator, receiver_url, webhook_setup = (
    receiver_bench.wh_emulator,
    receiver_bench.receiver_url,
    receiver_bench.setup,
)

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


def stored_now(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same kwargs as this version stores them: the ``_id`` -> ``job_id`` mapping is ``job_id_of``."""
    renamed = {key: value for key, value in kwargs.items() if key != "job_ids"}
    if "job_ids" in kwargs:
        renamed["job_id_of"] = kwargs["job_ids"]
    return renamed


@pytest.mark.parametrize(("classpath", "kwargs"), STORED_BEFORE_KINDS)
@pytest.mark.filterwarnings("ignore:.*job_ids.*:DeprecationWarning")
def test_triggers_stored_before_the_kinds_rebuild_and_serialize_as_they_were(
    classpath: str, kwargs: dict[str, Any]
) -> None:
    module, _, name = classpath.rpartition(".")
    trigger_class = getattr(__import__(module, fromlist=[name]), name)
    assert trigger_class(**kwargs).serialize() == (classpath, stored_now(kwargs))


def test_operators_and_sensors_hand_their_trigger_the_kwargs_of_before() -> None:
    job = JobSnapshot(id=ID, status=None, url="http://x", job_id="123-4")
    reage = AkoolImageReageOperator(task_id="r", modify_image="http://x", face_reage=3, poll_interval=5)
    made = reage.make_trigger(
        job, started_at=1.0, deadline=2.0, execution_deadline=3.0, first_poll_at=4.0, adaptive_polling=True
    )
    classpath, stored = STORED_BEFORE_KINDS[0]
    assert made.serialize() == (classpath, stored_now(stored))
    sensor = AkoolImageResultSensor(task_id="s", image_model_id=ID)
    _, kwargs = sensor.make_trigger([ID], started_at=1.0, deadline=2.0, first_poll_at=4.0).serialize()
    # A sensor's trigger never gets job_id_of: it does not own the job.
    assert "job_id_of" not in kwargs
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


# --- A new kind is one small module (tests/kinds/echo_kind.py), outside the package, in every mode ---


def test_a_kind_registers_by_name_and_the_generic_trigger_serializes_that_name() -> None:
    assert kind_named("echo") is ECHO
    assert ECHO.trigger == KIND_TRIGGER
    trigger = ECHO.make_trigger([ID], started_at=1.0, deadline=2.0, poll_interval=5.0)
    assert isinstance(trigger, AkoolKindTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == KIND_TRIGGER
    assert kwargs == {
        "kind": "echo",
        "kind_module": "tests.kinds.echo_kind",
        "ids": [ID],
        "akool_conn_id": "akool_default",
        "poll_interval": 5.0,
        "deadline": 2.0,
        "not_found_grace": 60.0,
        "started_at": 1.0,
        "max_poll_errors": 10,
    }
    rebuilt = AkoolKindTrigger(**kwargs)
    assert rebuilt.kind is ECHO
    assert rebuilt.serialize() == (classpath, kwargs)


def test_the_generic_trigger_imports_the_kinds_module_in_a_process_that_has_not() -> None:
    # A triggerer that never imported the kind's module: the row's kind_module brings it in.
    code = (
        "import sys; from airflow_provider_akool.triggers.base import AkoolKindTrigger;"
        "assert 'tests.kinds.echo_kind' not in sys.modules;"
        "t = AkoolKindTrigger(kind='echo', kind_module='tests.kinds.echo_kind', ids=['x']);"
        "print(t.kind.name, t.kind.inputs[0].name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["echo", "image"]


def test_an_unknown_kind_is_a_clear_error_and_a_name_is_taken_once() -> None:
    with pytest.raises(LookupError, match=r"no Akool job kind named 'nope' is registered \(known: .*echo"):
        kind_named("nope")
    with pytest.raises(ValueError, match="'echo' is already registered"):
        register(replace(ECHO, batch_size=2))
    assert register(ECHO) is ECHO  # the same kind again (a module imported twice) is fine


@pytest.mark.filterwarnings("ignore:.*job_ids.*:DeprecationWarning")
def test_the_receiver_rebuilds_only_triggers_of_registered_kinds() -> None:
    from airflow_provider_akool.webhook.receiver import _akool_trigger

    def row(classpath: str, kwargs: dict[str, Any]) -> Any:
        return SimpleNamespace(classpath=classpath, kwargs=kwargs)

    generic = ECHO.make_trigger([ID], started_at=1.0, deadline=2.0)
    assert _akool_trigger(row(*generic.serialize())).kind is ECHO
    for classpath, kwargs in STORED_BEFORE_KINDS:
        assert _akool_trigger(row(classpath, kwargs)).serialize() == (classpath, stored_now(kwargs))
    # Another provider's trigger, even a subclass of ours outside the registry, is not the receiver's.
    assert _akool_trigger(row("airflow.triggers.temporal.DateTimeTrigger", {})) is None
    assert _akool_trigger(row(f"{__name__}.NotAKind", {"ids": [ID]})) is None


class NotAKind(AkoolReageTrigger):
    """A trigger class no registered kind names."""


class AkoolEchoOwnTrigger(AkoolJobTrigger):
    """A kind's own trigger class outside the package (as a kind of before the generic trigger had)."""

    kind = register(
        replace(ECHO, name="echo with its own trigger", trigger=f"{__name__}.AkoolEchoOwnTrigger")
    )


def test_the_receiver_rebuilds_a_registered_kinds_own_trigger_outside_the_package() -> None:
    from airflow_provider_akool.webhook.receiver import _akool_trigger

    made = AkoolEchoOwnTrigger.kind.make_trigger([ID], started_at=1.0, deadline=2.0)
    classpath, kwargs = made.serialize()
    assert classpath == f"{__name__}.AkoolEchoOwnTrigger"
    rebuilt = _akool_trigger(SimpleNamespace(classpath=classpath, kwargs=kwargs))
    assert isinstance(rebuilt, AkoolEchoOwnTrigger)
    assert rebuilt.serialize() == (classpath, kwargs)


@pytest.fixture
def views_client(views_auth: Any) -> Any:
    from fastapi.testclient import TestClient

    from airflow_provider_akool.plugins import views_app

    return TestClient(views_app.app)


def test_a_new_kind_of_one_module_waits_in_every_mode_and_shows_in_the_views_and_lineage(
    airflow_db: Any, emulator: Any, akool_connection: ConnectionFactory, views_auth: Any, views_client: Any
) -> None:
    portrait = sample(emulator, "portrait.jpg")

    @dag(dag_id="new_kind", schedule=None, start_date=START)
    def new_kind() -> None:
        for mode, deferrable in (("sync", False), ("defer", True)):
            echo = AkoolEchoOperator(
                task_id=f"echo_{mode}", image=portrait, poll_interval=0.2, deferrable=deferrable
            )
            AkoolEchoSensor(
                task_id=f"sensor_{mode}", ids=echo.output, poke_interval=0.2, deferrable=deferrable
            )

    run = run_recorded(new_kind(), emulator.client)

    assert run.state == "success", run.states
    assert sum(1 for r in run.ledger["requests"] if r["endpoint"] == "imgreage") == 2
    for mode in ("sync", "defer"):
        result = run.value(f"echo_{mode}")
        assert result["status"] == "success"
        assert result["job_id"]
        assert run.value(f"sensor_{mode}") == [{**result, "output_path": None}]

    # The Akool tab shows the kind's media input beside its result; the page lists the job.
    ti = run.tis[("echo_sync", -1)]
    cookies = {"_token": token(views_auth, "viewer")}
    page = views_client.get(f"/task/{ti.dag_id}/{ti.run_id}/{ti.task_id}/-1", cookies=cookies).text
    assert re.findall(r"<img class='full (input|result)' src='([^']+)'", page) == [
        ("input", portrait),
        ("result", run.value("echo_sync")["url"]),
    ]
    assert "image: <code>" in page
    listing = views_client.get("/jobs", cookies=cookies).text
    assert run.value("echo_defer")["id"] in listing

    # Lineage: the kind's media input is the input dataset, the result the output, the job the facet.
    operator = AkoolEchoOperator(task_id="lineage", image=portrait)
    operator.note_lineage_job(run.value("echo_sync"))
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [(emulator.url, "/media/samples/portrait.jpg")]
    assert [d.name for d in lineage.outputs] == [urlsplit(run.value("echo_sync")["url"]).path]
    assert lineage.run_facets["akool"].job_kind == "echo"


def test_a_new_kind_completes_on_akools_callback_through_the_receiver(
    webhook_setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    completes_on_callback(
        webhook_setup,
        monkeypatch,
        "new_kind_webhook",
        AkoolEchoOperator,
        image=sample(webhook_setup, "portrait.jpg"),
    )
