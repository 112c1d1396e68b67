"""The sensor that waits for a background-change result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_akool import validation
from airflow_provider_akool.exceptions import AkoolValidationError
from airflow_provider_akool.kinds.background_change import BACKGROUND_CHANGE
from airflow_provider_akool.sensors.base import AkoolJobSensor

if TYPE_CHECKING:
    from airflow_provider_akool.wait import JobSnapshot


class AkoolBackgroundChangeSensor(AkoolJobSensor):
    """
    Wait for an Akool background-change job (``infobymodelid``), in poke, reschedule or deferrable mode.

    Returns ``{"id", "job_id": None, "status": "success", "url": <result image>, "output_path": None}``
    (a sensor keeps no file). A failed job (status 4) fails the task with
    :class:`~airflow_provider_akool.exceptions.AkoolJobFailedError`, whose ``reasons`` are Akool's
    ``error_reasons``; an id Akool does not know fails it after ``not_found_grace``. On its ``timeout`` the
    sensor fails and the job runs on (background change cannot be cancelled). Akool's current docs mark
    the background-change endpoints deprecated; they work as before.

    :param image_model_id: the ``_id`` that ``bg/replace`` returned, or the return dict of the
        background-change operator (its ``id``), so ``image_model_id=change.output`` works (templated).
    :param akool_conn_id: the ``akool`` connection (templated).
    :param not_found_grace: seconds the id may stay unknown to Akool before the task fails (default 60).
    :param deferrable: wait in the triggerer (the kind's trigger), with the sensor's
        ``timeout`` as the trigger's absolute deadline.
    :param poke_interval: seconds between checks (default 10); ``timeout``, ``mode``, ``soft_fail`` and the
        rest are those of any Airflow sensor.
    """

    template_fields: Sequence[str] = ("image_model_id", "akool_conn_id")
    kind = BACKGROUND_CHANGE

    def __init__(self, *, image_model_id: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_model_id = image_model_id

    def ids_to_wait_for(self) -> list[str]:
        """Return the rendered ``image_model_id`` as the one id to wait for."""
        ids = validation.collect_ids("image_model_id", self.image_model_id, key="id")
        if len(ids) != 1:
            raise AkoolValidationError(
                f"image_model_id must be one id (the _id that bg/replace returned); got {len(ids)} ids"
            )
        return ids

    def return_value(self, results: tuple[JobSnapshot, ...]) -> dict[str, Any]:
        """Return the one job's dict."""
        (job,) = results
        return job.as_return_value()


__all__ = ["AkoolBackgroundChangeSensor"]
