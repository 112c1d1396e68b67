"""
Run a DAG with ``dag.test()`` and keep what happened: states, task instances, exceptions, XComs, the ledger.

Tests build a DAG in memory and run it here; the DAG runs are few and shared by module fixtures, as each
costs seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pendulum
from airflow.listeners import hookimpl

try:  # Airflow 3.2+: the task runner's own listener manager
    from airflow.sdk.listener import get_listener_manager
except ImportError:  # Airflow 3.1
    from airflow.listeners.listener import get_listener_manager  # type: ignore[no-redef]

#: The poll interval of the operators of the DAGs tests run (seconds).
POLL = 0.2
#: The ``start_date`` of those DAGs.
START = pendulum.datetime(2026, 1, 1, tz="UTC")


class FailureRecorder:
    """An Airflow listener that keeps the exception of every failed task, to check its class and message."""

    def __init__(self) -> None:
        self.failures: dict[tuple[str, int], BaseException] = {}

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.failures[(task_instance.task_id, task_instance.map_index)] = error


@dataclass
class RecordedRun:
    """A finished ``dag.test()`` run: states, XComs and exceptions per task instance, and the ledger."""

    state: str
    states: dict[tuple[str, int], str]
    tis: dict[tuple[str, int], Any]
    failures: dict[tuple[str, int], BaseException]
    ledger: dict[str, Any] = field(default_factory=dict)

    def value(self, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
        ti = self.tis[(task_id, map_index)]
        return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index)

    def failure(self, task_id: str, map_index: int = -1) -> BaseException:
        assert self.states[(task_id, map_index)] == "failed", self.states
        return self.failures[(task_id, map_index)]

    def rendered(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """The task's template fields as rendered (what the UI shows)."""
        from airflow.models.renderedtifields import RenderedTaskInstanceFields

        fields: dict[str, Any] = RenderedTaskInstanceFields.get_templated_fields(
            self.tis[(task_id, map_index)]
        )
        return fields

    def places_holding(self, secret: str) -> list[str]:
        """Return the return values and task errors of the run that contain ``secret`` (none, it is hoped)."""
        places = [
            f"return value of {task_id}[{map_index}]"
            for task_id, map_index in self.tis
            if secret in json.dumps(self.value(task_id, map_index), default=str)
        ]
        places.extend(f"error of {key}" for key, error in self.failures.items() if secret in str(error))
        return places

    def job(self, akool_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.ledger["jobs"][akool_id]
        return job


def run_recorded(dag_object: Any, emulator_client: Any, **test_kwargs: Any) -> RecordedRun:
    """Run ``dag_object`` with ``run_dag``; keep states, task instances, exceptions and the ledger."""
    recorder = FailureRecorder()
    listeners = get_listener_manager()
    listeners.add_listener(recorder)
    try:
        dag_run = run_dag(dag_object, **test_kwargs)
    finally:
        listeners.pm.unregister(recorder)
    tis = {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
    return RecordedRun(
        state=str(dag_run.state),
        states={key: str(ti.state) for key, ti in tis.items()},
        tis=tis,
        failures=recorder.failures,
        ledger=emulator_client.ledger(),
    )


def run_dag(dag: Any, **test_kwargs: Any) -> Any:
    """
    Run ``dag`` with ``dag.test()`` and return the DagRun.

    ``dag.test()`` only runs DAGs it finds serialized in the database, which it does by parsing the DAG
    bundles; DAGs a test builds in memory are serialized here first, under the default bundle.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef]

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.devnull)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag.test(**test_kwargs)


def all_xcom_values(run: RecordedRun) -> str:
    """Return every XCom of the run, one ``task_id key value`` line each (to search for a secret)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    ti = next(iter(run.tis.values()))
    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id == ti.dag_id, XComModel.run_id == ti.run_id
            )
        ).all()
    return "\n".join(f"{task_id} {key} {value}" for task_id, key, value in rows)
