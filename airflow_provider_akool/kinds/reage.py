"""
Face reage (image and video): polled by ``listbyids`` in batches, cancelled by ``job_id`` (``job/del``).

Used by :class:`~airflow_provider_akool.operators.reage.AkoolImageReageOperator`,
:class:`~airflow_provider_akool.operators.reage.AkoolVideoReageOperator`,
:class:`~airflow_provider_akool.sensors.reage.AkoolReageSensor` and
:class:`~airflow_provider_akool.triggers.reage.AkoolReageTrigger`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_akool import protocol
from airflow_provider_akool.kinds.base import DEFAULT_BATCH_SIZE, JobKind, MediaInput, register
from airflow_provider_akool.models import JobStatus, ReageJob
from airflow_provider_akool.wait import JobSnapshot

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook


def _snapshots(entries: protocol.ReageEntries) -> dict[str, JobSnapshot]:
    """
    Return the snapshot of each readable entry; raise ``AkoolPartialReplyError`` when some were not.

    The error's ``found`` holds the snapshots of the others and ``errors`` the error of each unreadable
    id, so the shared poller hands each wait its own result or its own error.
    """
    found = {result_id: JobSnapshot.of_reage(result) for result_id, result in entries.results.items()}
    error = entries.partial_error(found)
    if error is not None:
        raise error
    return found


def fetch_reage(hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
    """Ask ``listbyids`` for ``ids`` (in batches of the hook's ``batch_size``, matched by ``_id``)."""
    return _snapshots(hook.get_reage_entries(ids))


async def afetch_reage(hook: AkoolHook, ids: list[str]) -> dict[str, JobSnapshot]:
    """Ask ``listbyids`` for ``ids`` without blocking the event loop."""
    return _snapshots(await hook.aget_reage_entries(ids))


def cancel_reage(hook: AkoolHook, job_ids: list[str]) -> None:
    """Cancel reage jobs by ``job_id`` (``job/del``)."""
    hook.cancel_reage_jobs(job_ids)


async def acancel_reage(hook: AkoolHook, job_ids: list[str]) -> None:
    """Cancel reage jobs by ``job_id`` without blocking the event loop."""
    await hook.acancel_reage_jobs(job_ids)


def submitted_reage(job: ReageJob) -> JobSnapshot:
    """A reage submission names ``_id``, ``job_id`` and the final URL; it is queued until polled."""
    return JobSnapshot(id=job.id, status=JobStatus.QUEUED, url=job.url, job_id=job.job_id)


def reage_request(params: Mapping[str, Any]) -> protocol.AkoolRequest[ReageJob]:
    """``vidreage`` when ``params`` name a ``modify_video``, else ``imgreage``."""
    args = (int(params["face_reage"]), params["target_image"], params.get("webhook_url"))
    if params.get("modify_video"):
        return protocol.build_video_reage(params["modify_video"], *args)
    return protocol.build_image_reage(params["modify_image"], *args)


#: Reage: ``listbyids`` takes many ids, so the shared poller batches them and aligns the waits' polls.
REAGE = JobKind(
    name="reage",
    fetch=fetch_reage,
    afetch=afetch_reage,
    submitted=submitted_reage,
    trigger="airflow_provider_akool.triggers.reage.AkoolReageTrigger",
    cancel=cancel_reage,
    acancel=acancel_reage,
    request=reage_request,
    inputs=(
        MediaInput("modify_image", "image"),
        MediaInput("modify_video", "video"),
        MediaInput("target_image", "image", key="path"),
    ),
    batch_size=DEFAULT_BATCH_SIZE,
    align=True,
)
register(REAGE)

__all__ = ["REAGE"]
