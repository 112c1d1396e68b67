"""The trigger behind deferrable reage operators and the deferrable reage sensor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_akool.kinds.reage import REAGE
from airflow_provider_akool.triggers.base import AkoolJobTrigger


class AkoolReageTrigger(AkoolJobTrigger):
    """
    Wait for one or many reage results (``listbyids``) in the triggerer: the released class of the kind
    :data:`~airflow_provider_akool.kinds.reage.REAGE`, kept so the rows Airflow stored rebuild as they were.

    Everything is :class:`~airflow_provider_akool.triggers.base.AkoolJobTrigger`'s (its keyword arguments,
    the one event, the shared ``listbyids`` rounds, the cancel on a kill); only the ids are ``result_ids``,
    in the order the event's ``results`` keep.

    :param result_ids: the ``_id`` values a reage submission returned.
    :param kwargs: those of :class:`~airflow_provider_akool.triggers.base.AkoolJobTrigger`.
    """

    kind = REAGE

    def __init__(self, result_ids: Sequence[str], **kwargs: Any) -> None:
        super().__init__(ids=result_ids, **kwargs)

    @classmethod
    def for_ids(cls, ids: Sequence[str], **kwargs: Any) -> AkoolReageTrigger:
        """Return the trigger that waits for ``ids`` (its ``result_ids``)."""
        return cls(result_ids=ids, **kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the keyword arguments that rebuild this trigger."""
        return self.class_path(), {"result_ids": list(self.ids), **self.wait_kwargs(), **self.poller_kwargs()}
