"""What one kind of Akool job is, for the generic operator, sensor and trigger code."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_akool.triggers.poller import DEFAULT_MAX_CONCURRENCY

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.triggers.base import AkoolJobTrigger
    from airflow_provider_akool.wait import JobSnapshot

#: One poll: the states of ``ids``, by ``_id``; ids Akool does not know are absent. When only some entries
#: of a reply cannot be read it raises ``AkoolPartialReplyError`` with the states of the others (``found``,
#: as :class:`~airflow_provider_akool.wait.JobSnapshot`) and an error per unreadable id (``errors``).
Fetch = Callable[["AkoolHook", list[str]], "dict[str, JobSnapshot]"]
AsyncFetch = Callable[["AkoolHook", list[str]], Awaitable["dict[str, JobSnapshot]"]]
#: Cancel jobs by the ids Akool's cancel endpoint takes (the snapshots' ``job_id``).
Cancel = Callable[["AkoolHook", list[str]], None]
AsyncCancel = Callable[["AkoolHook", list[str]], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    """
    One kind of Akool job, described once for every mode of waiting.

    :param name: the kind as messages and the ``task_state_store`` record spell it (``reage``); also the
        key of its shared pollers.
    :param fetch: one poll in a worker (:data:`Fetch`), one attempt per request of the hook given.
    :param afetch: the same poll in the triggerer, without blocking the event loop.
    :param submitted: the snapshot of a submission's reply (the hook's return value): the ``_id`` to poll,
        the ``job_id`` to cancel by, the result URL and the status where the reply gave them.
    :param trigger: the class path of the trigger that waits for jobs of this kind; a string because the
        trigger itself uses this kind (the path is also what Airflow stores in its database).
    :param cancel: cancel jobs by their ``job_id`` in a worker, or None where Akool cannot cancel them.
    :param acancel: the same in the triggerer; given exactly when ``cancel`` is.
    :param batch_size: ids per request (1: the endpoint takes one id); triggers may ask for another.
    :param max_concurrency: requests of a shared poller in flight at once; triggers may ask for another.
    :param align: put the shared poller's regular polls on one grid, so waits meet in rounds (batches).
    :param jitter: the part of each regular pause a shared poller takes off at random, so waits of a
        single-id endpoint spread out.
    """

    name: str
    fetch: Fetch
    afetch: AsyncFetch
    submitted: Callable[[Any], JobSnapshot]
    trigger: str
    cancel: Cancel | None = None
    acancel: AsyncCancel | None = None
    batch_size: int = 1
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    align: bool = False
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if (self.cancel is None) != (self.acancel is None):
            raise ValueError(f"job kind {self.name}: give both cancel and acancel, or neither")
        if self.batch_size < 1 or self.max_concurrency < 1:
            raise ValueError(f"job kind {self.name}: batch_size and max_concurrency must be at least 1")

    @property
    def can_cancel(self) -> bool:
        """Whether Akool can cancel jobs of this kind."""
        return self.cancel is not None

    @property
    def trigger_class(self) -> type[AkoolJobTrigger]:
        """The trigger class, imported on first use."""
        module, _, name = self.trigger.rpartition(".")
        trigger_class: type[AkoolJobTrigger] = getattr(importlib.import_module(module), name)
        return trigger_class

    def fetch_one(self, hook: AkoolHook, akool_id: str) -> JobSnapshot | None:
        """Poll one job in a worker; None when Akool does not know its id (yet)."""
        return self.fetch(hook, [akool_id]).get(akool_id)


__all__ = ["AsyncCancel", "AsyncFetch", "Cancel", "Fetch", "JobKind"]
