"""
The trigger behind the deferrable background-change operator and sensor.

Its name keeps the word of before ("image result"): Airflow stores a deferred task's trigger by class
path, so a released trigger class is never renamed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_akool.kinds.background_change import BACKGROUND_CHANGE
from airflow_provider_akool.triggers.base import AkoolJobTrigger


class AkoolImageResultTrigger(AkoolJobTrigger):
    """
    Wait for one background-change job (``infobymodelid``) in the triggerer: the released class of the kind
    :data:`~airflow_provider_akool.kinds.background_change.BACKGROUND_CHANGE`, kept so the rows Airflow
    stored rebuild as they were.

    The event is :class:`~airflow_provider_akool.triggers.base.AkoolJobTrigger`'s with the one job's fields
    also at the top: ``id``, ``url`` (the result image, on success) and ``error_reasons`` (Akool's, on
    failure). Background change has no cancel endpoint: a deadline or a kill only ends the wait, and the
    job runs on at Akool (so there is no ``job_id_of``).

    :param image_model_id: the ``_id`` that ``bg/replace`` returned.
    :param kwargs: those of :class:`~airflow_provider_akool.triggers.base.AkoolJobTrigger` but ``job_id_of``.
    """

    kind = BACKGROUND_CHANGE

    def __init__(self, image_model_id: str, **kwargs: Any) -> None:
        if {"job_id_of", "job_ids"} & kwargs.keys():
            raise TypeError(
                "AkoolImageResultTrigger takes no job_id_of: background change cannot be cancelled"
            )
        super().__init__(ids=[image_model_id], **kwargs)
        self.image_model_id = image_model_id

    @classmethod
    def for_ids(cls, ids: Sequence[str], **kwargs: Any) -> AkoolImageResultTrigger:
        """Return the trigger that waits for the one id of ``ids``; ``job_id_of`` is dropped (no cancel)."""
        (image_model_id,) = ids
        kwargs.pop("job_id_of", None)
        return cls(image_model_id=image_model_id, **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the keyword arguments that rebuild this trigger."""
        kwargs = self.wait_kwargs()
        kwargs.pop("job_id_of", None)  # present only where there are jobs to cancel
        return self.class_path(), {"image_model_id": self.image_model_id, **kwargs, **self.poller_kwargs()}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait as every Akool trigger does; add the job's own fields to the one event."""
        async for event in super().run():
            yield TriggerEvent(with_job_fields(event.payload))


def with_job_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Return ``payload`` with ``id``, ``url`` and ``error_reasons`` of its one job at the top level."""
    job = payload["results"][0]
    return {**payload, "id": job["id"], "url": job["url"], "error_reasons": list(job["reasons"])}


__all__ = ["AkoolImageResultTrigger"]
