"""The sensor that waits for reage results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_akool import validation
from airflow_provider_akool.sensors.base import AkoolJobSensor
from airflow_provider_akool.triggers.reage import AkoolReageTrigger
from airflow_provider_akool.wait import JobSnapshot

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook


class AkoolReageSensor(AkoolJobSensor):
    """
    Wait for one or many reage results (``_id`` values), in poke, reschedule or deferrable mode.

    Returns one ``{"id", "job_id", "status", "url", "output_path"}`` per id, in the order given
    (``output_path`` is None: a sensor keeps no file). Any failed job (status 4) fails the task with its id,
    job id and reason; an id Akool does not know fails it after ``not_found_grace``.

    :param result_ids: one ``_id``, a list, or an XCom of either; the return dicts of the reage operators
        are taken too (their ``id``), so ``result_ids=reage.output`` works, mapped or not.
    :param akool_conn_id: the ``akool`` connection.
    :param not_found_grace: seconds an id may stay unknown to Akool before the task fails (default 60).
    :param deferrable: wait in the triggerer
        (:class:`~airflow_provider_akool.triggers.reage.AkoolReageTrigger`).
    :param poke_interval: seconds between checks (default 10); ``timeout``, ``mode``, ``soft_fail`` and the
        rest are those of any Airflow sensor.
    """

    template_fields: Sequence[str] = ("result_ids", "akool_conn_id")

    def __init__(self, *, result_ids: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result_ids = result_ids

    def ids_to_wait_for(self) -> list[str]:
        """Return the rendered ``result_ids`` as a list of ids."""
        return validation.collect_ids("result_ids", self.result_ids, key="id")

    def poll(self, hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
        """Ask ``listbyids`` once (in batches, matched by ``_id``)."""
        return {result_id: JobSnapshot.of_reage(r) for result_id, r in hook.get_reage_results(ids).items()}

    def make_trigger(
        self, ids: list[str], *, started_at: float, deadline: float, **wait_options: Any
    ) -> AkoolReageTrigger:
        """Return the reage trigger, without ``job_ids``: killing a sensor leaves the jobs running."""
        return AkoolReageTrigger(
            result_ids=ids,
            akool_conn_id=self.akool_conn_id,
            poll_interval=self.poke_interval,
            deadline=deadline,
            not_found_grace=float(self.not_found_grace),
            started_at=started_at,
            **wait_options,
        )

    def return_value(self, results: tuple[JobSnapshot, ...]) -> list[dict[str, Any]]:
        """Return one dict per id, in the order given."""
        return [snapshot.as_return_value() for snapshot in results]
