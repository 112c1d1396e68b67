"""
Background change: polled by ``infobymodelid`` one id per request; Akool cannot cancel it.

Used by :class:`~airflow_provider_akool.operators.background_change.AkoolBackgroundChangeOperator`,
:class:`~airflow_provider_akool.sensors.background_change.AkoolBackgroundChangeSensor` and
:class:`~airflow_provider_akool.triggers.image_result.AkoolImageResultTrigger` (the trigger keeps its
released name: Airflow stores its class path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_akool import protocol
from airflow_provider_akool.deprecation import renamed
from airflow_provider_akool.kinds.base import DEFAULT_JITTER, JobKind, MediaInput, register
from airflow_provider_akool.wait import JobSnapshot

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.models import BackgroundChangeJob


def fetch_background_change(hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
    """Ask ``infobymodelid`` for the one id of ``ids`` (an unknown id raises ``AkoolNotFoundError``)."""
    (image_model_id,) = ids
    return {
        image_model_id: JobSnapshot.of_background_change(hook.get_background_change_result(image_model_id))
    }


async def afetch_background_change(hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
    """Ask ``infobymodelid`` for the one id of ``ids`` without blocking the event loop."""
    (image_model_id,) = ids
    result = await hook.aget_background_change_result(image_model_id)
    return {image_model_id: JobSnapshot.of_background_change(result)}


def submitted_background_change(job: BackgroundChangeJob) -> JobSnapshot:
    """A background-change submission names the ``_id`` and its status; there is no ``job_id``."""
    return JobSnapshot(id=job.id, status=job.status)


#: Background change: one id per request, so the shared poller caps the requests in flight and spreads
#: the waits' polls with jitter; no cancel endpoint.
BACKGROUND_CHANGE = JobKind(
    name="background change",
    fetch=fetch_background_change,
    afetch=afetch_background_change,
    submitted=submitted_background_change,
    trigger="airflow_provider_akool.triggers.image_result.AkoolImageResultTrigger",
    request=lambda params: protocol.build_background_change(**params),
    inputs=(MediaInput("origin_img", "image"), MediaInput("template_url", "image")),
    batch_size=1,
    jitter=DEFAULT_JITTER,
)
register(BACKGROUND_CHANGE)

#: Names of before the one vocabulary (issue 21), kept as deprecated aliases.
__getattr__ = renamed(
    __name__,
    {"fetch_image_result": "fetch_background_change", "afetch_image_result": "afetch_background_change"},
)

__all__ = [
    "BACKGROUND_CHANGE",
    "afetch_background_change",
    "fetch_background_change",
]
