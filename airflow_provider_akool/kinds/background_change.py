"""
Background change: polled by ``infobymodelid`` one id per request; Akool cannot cancel it.

Used by :class:`~airflow_provider_akool.operators.background_change.AkoolBackgroundChangeOperator`,
:class:`~airflow_provider_akool.sensors.image_result.AkoolImageResultSensor` and
:class:`~airflow_provider_akool.triggers.image_result.AkoolImageResultTrigger`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_akool.kinds.base import JobKind
from airflow_provider_akool.triggers.poller import DEFAULT_JITTER
from airflow_provider_akool.wait import JobSnapshot

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.models import BackgroundChangeJob


def fetch_image_result(hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
    """Ask ``infobymodelid`` for the one id of ``ids`` (an unknown id raises ``AkoolNotFoundError``)."""
    (image_model_id,) = ids
    return {image_model_id: JobSnapshot.of_image(hook.get_image_result(image_model_id))}


async def afetch_image_result(hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
    """Ask ``infobymodelid`` for the one id of ``ids`` without blocking the event loop."""
    (image_model_id,) = ids
    return {image_model_id: JobSnapshot.of_image(await hook.aget_image_result(image_model_id))}


def submitted_background_change(job: BackgroundChangeJob) -> JobSnapshot:
    """A background-change submission names the ``_id`` and its status; there is no ``job_id``."""
    return JobSnapshot(id=job.id, status=job.status)


#: Background change: one id per request, so the shared poller caps the requests in flight and spreads
#: the waits' polls with jitter; no cancel endpoint.
BACKGROUND_CHANGE = JobKind(
    name="background change",
    fetch=fetch_image_result,
    afetch=afetch_image_result,
    submitted=submitted_background_change,
    trigger="airflow_provider_akool.triggers.image_result.AkoolImageResultTrigger",
    batch_size=1,
    jitter=DEFAULT_JITTER,
)

__all__ = ["BACKGROUND_CHANGE"]
