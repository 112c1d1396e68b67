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
from airflow_provider_akool.kinds.base import DEFAULT_MAX_CONCURRENCY
from airflow_provider_akool.triggers.base import AkoolJobTrigger
from airflow_provider_akool.wait import DEFAULT_MAX_POLL_ERRORS, DEFAULT_NOT_FOUND_GRACE


class AkoolImageResultTrigger(AkoolJobTrigger):
    """
    Wait for one background-change job (``infobymodelid``) in the triggerer and fire exactly one event.

    The event is the payload of :mod:`airflow_provider_akool.wait` (``status``: ``success``, ``failed``,
    ``timeout``, ``not_found`` or ``error``; ``message``; ``results``; ``error``) with the one job's fields
    also at the top: ``id``, ``url`` (the result image, on success) and ``error_reasons`` (Akool's, on
    failure). Background change has no cancel endpoint: a deadline or a kill only ends the wait, and the
    job runs on at Akool.

    The endpoint takes one id, so there is nothing to batch: the background-change waits of a triggerer on
    one connection share a poller that keeps at most ``max_concurrency`` requests in flight and spreads the
    polls with jitter, so that many waits never reach Akool as one burst. How background change is polled
    is :data:`~airflow_provider_akool.kinds.background_change.BACKGROUND_CHANGE`.

    :param image_model_id: the ``_id`` that ``bg/replace`` returned.
    :param akool_conn_id: the ``akool`` connection.
    :param poll_interval: seconds between polls.
    :param deadline: when to stop waiting (absolute epoch seconds), or None.
    :param not_found_grace: seconds the id may stay unknown to Akool (code 1008) before the wait fails.
    :param started_at: when the wait began (epoch seconds); defaults to now. Kept across a triggerer
        restart, so elapsed times and the grace count from the real start.
    :param max_poll_errors: failed polls in a row (transient errors, backed off) before the wait fails.
    :param max_concurrency: requests of the shared poller in flight at once (per connection).
    :param coalesce: share the poller of this triggerer and connection; False polls alone.
    :param adaptive_polling: opt in to polling young jobs more often, never more rarely than
        ``poll_interval``; off by default (every ``poll_interval``).
    :param execution_deadline: when the deferring task's ``execution_timeout`` ends its try (epoch
        seconds), or None; the earlier deadline ends the wait, and the event's ``deadline`` says which.
    :param first_poll_at: when to poll first (epoch seconds), or None for at once: the deferring task
        checked just before, so its next check comes ``poll_interval`` after that one.
    :param webhook_token_sha256: the token digest of the task's callback URL (``webhook_url="airflow"``):
        a callback may resume the task, and polling relaxes to ``max(poll_interval, 60 s)``.
    """

    kind = BACKGROUND_CHANGE

    def __init__(
        self,
        image_model_id: str,
        akool_conn_id: str = "akool_default",
        poll_interval: float = 10.0,
        deadline: float | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        started_at: float | None = None,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        coalesce: bool = True,
        adaptive_polling: bool = False,
        execution_deadline: float | None = None,
        first_poll_at: float | None = None,
        webhook_token_sha256: str | None = None,
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
            coalesce=coalesce,
            adaptive_polling=adaptive_polling,
            execution_deadline=execution_deadline,
            first_poll_at=first_poll_at,
            max_concurrency=max_concurrency,
            webhook_token_sha256=webhook_token_sha256,
        )
        self.image_model_id = image_model_id

    @classmethod
    def for_ids(cls, ids: Sequence[str], **kwargs: Any) -> AkoolImageResultTrigger:
        """Return the trigger that waits for the one id of ``ids``; ``job_ids`` are dropped (no cancel)."""
        (image_model_id,) = ids
        kwargs.pop("job_ids", None)
        return cls(image_model_id=image_model_id, **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the keyword arguments that rebuild this trigger."""
        kwargs = self.wait_kwargs()
        kwargs.pop("job_ids", None)  # present only where there are jobs to cancel
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
