"""The trigger behind the deferrable background-change operator and the deferrable image-result sensor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.triggers.base import AkoolJobTrigger
from airflow_provider_akool.wait import DEFAULT_MAX_POLL_ERRORS, DEFAULT_NOT_FOUND_GRACE, JobSnapshot


class AkoolImageResultTrigger(AkoolJobTrigger):
    """
    Wait for one background-change job (``infobymodelid``) in the triggerer and fire exactly one event.

    The event is the payload of :mod:`airflow_provider_akool.wait` (``status``: ``success``, ``failed``,
    ``timeout``, ``not_found`` or ``error``; ``message``; ``results``; ``error``) with the one job's fields
    also at the top: ``id``, ``url`` (the result image, on success) and ``error_reasons`` (Akool's, on
    failure). Background change has no cancel endpoint: a deadline or a kill only ends the wait, and the
    job runs on at Akool.

    :param image_model_id: the ``_id`` that ``bg/replace`` returned.
    :param akool_conn_id: the ``akool`` connection.
    :param poll_interval: seconds between polls.
    :param deadline: when to stop waiting (absolute epoch seconds), or None.
    :param not_found_grace: seconds the id may stay unknown to Akool (code 1008) before the wait fails.
    :param started_at: when the wait began (epoch seconds); defaults to now. Kept across a triggerer
        restart, so elapsed times and the grace count from the real start.
    :param max_poll_errors: failed polls in a row (transient errors, backed off) before the wait fails.
    """

    def __init__(
        self,
        image_model_id: str,
        akool_conn_id: str = AkoolHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        started_at: float | None = None,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
    ) -> None:
        # No job_ids: there is nothing to cancel on a kill.
        super().__init__(
            ids=[image_model_id],
            akool_conn_id=akool_conn_id,
            poll_interval=poll_interval,
            deadline=deadline,
            not_found_grace=not_found_grace,
            started_at=started_at,
            max_poll_errors=max_poll_errors,
        )
        self.image_model_id = image_model_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the keyword arguments that rebuild this trigger."""
        kwargs = self.wait_kwargs()
        del kwargs["job_ids"]
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"image_model_id": self.image_model_id, **kwargs},
        )

    async def poll(self, hook: AkoolHook) -> dict[str, JobSnapshot]:
        """Ask ``infobymodelid`` once for the job's state."""
        result = await hook.aget_image_result(self.image_model_id)
        return {self.image_model_id: JobSnapshot.of_image(result)}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait as every Akool trigger does; add the job's own fields to the one event."""
        async for event in super().run():
            yield TriggerEvent(with_job_fields(event.payload))


def with_job_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Return ``payload`` with ``id``, ``url`` and ``error_reasons`` of its one job at the top level."""
    job = payload["results"][0]
    return {**payload, "id": job["id"], "url": job["url"], "error_reasons": list(job["reasons"])}


__all__ = ["AkoolImageResultTrigger"]
