"""The trigger behind deferrable reage operators and the deferrable reage sensor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_akool.kinds.base import DEFAULT_BATCH_SIZE
from airflow_provider_akool.kinds.reage import REAGE
from airflow_provider_akool.triggers.base import AkoolJobTrigger
from airflow_provider_akool.wait import DEFAULT_MAX_POLL_ERRORS, DEFAULT_NOT_FOUND_GRACE


class AkoolReageTrigger(AkoolJobTrigger):
    """
    Wait for one or many reage results (``listbyids``) in the triggerer.

    Fires one event (schema in :mod:`airflow_provider_akool.wait`): ``success`` when every job succeeded,
    ``failed`` as soon as one failed (status 4), ``not_found`` when an id stays unknown past the grace,
    ``timeout`` on the deadline (the resumed operator cancels the job), ``error`` when a poll failed for
    good. The ``results`` are in the order of ``result_ids``.

    All the reage waits of a triggerer on one connection share one poller: each round it asks ``listbyids``
    for up to ``batch_size`` ids per request and hands every trigger its own results (see
    :mod:`~airflow_provider_akool.triggers.poller`). How reage is polled and cancelled is
    :data:`~airflow_provider_akool.kinds.reage.REAGE`.

    :param result_ids: the ``_id`` values a reage submission returned.
    :param akool_conn_id: the ``akool`` connection.
    :param poll_interval: seconds between polls.
    :param deadline: when to stop waiting (epoch seconds), or None.
    :param job_ids: ``{_id: job_id}`` of jobs the deferring task submitted; a user killing the task cancels
        them (``on_kill``). Empty for a sensor, which does not own the jobs it watches.
    :param not_found_grace: seconds an id may stay unknown to Akool before the wait fails.
    :param started_at: when the wait began (epoch seconds); defaults to now.
    :param max_poll_errors: failed polls in a row before the wait fails.
    :param batch_size: ids per ``listbyids`` request of the shared poller (Akool publishes no bound).
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

    kind = REAGE

    def __init__(
        self,
        result_ids: Sequence[str],
        akool_conn_id: str = "akool_default",
        poll_interval: float = 10.0,
        deadline: float | None = None,
        job_ids: Mapping[str, str | None] | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        started_at: float | None = None,
        max_poll_errors: int = DEFAULT_MAX_POLL_ERRORS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        coalesce: bool = True,
        adaptive_polling: bool = False,
        execution_deadline: float | None = None,
        first_poll_at: float | None = None,
        webhook_token_sha256: str | None = None,
    ) -> None:
        super().__init__(
            ids=result_ids,
            akool_conn_id=akool_conn_id,
            poll_interval=poll_interval,
            deadline=deadline,
            job_ids=job_ids,
            not_found_grace=not_found_grace,
            started_at=started_at,
            max_poll_errors=max_poll_errors,
            coalesce=coalesce,
            adaptive_polling=adaptive_polling,
            execution_deadline=execution_deadline,
            first_poll_at=first_poll_at,
            batch_size=batch_size,
            webhook_token_sha256=webhook_token_sha256,
        )

    @classmethod
    def for_ids(cls, ids: Sequence[str], **kwargs: Any) -> AkoolReageTrigger:
        """Return the trigger that waits for ``ids`` (its ``result_ids``)."""
        return cls(result_ids=ids, **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the keyword arguments that rebuild this trigger."""
        return self.class_path(), {"result_ids": list(self.ids), **self.wait_kwargs(), **self.poller_kwargs()}
