"""
Face swap: image (``specifyimage``), video (``specifyvideo``) and Face Swap Pro (v4 ``faceswapByImage``).

Each is a job of the reage family: polled through the same ``listbyids`` (so reage and face swap ids share
one request), cancelled through the same ``job/del``, called back with ``type`` "faceswap"; see
``api_reage.py`` for those two endpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from airflow_provider_akool.emulator import inputs, validation
from airflow_provider_akool.emulator.api_common import (
    admit_submission,
    charge_new_job,
    get_state,
    sample_name,
)
from airflow_provider_akool.emulator.envelope import OK, SUBMIT_MESSAGE, reply

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse

    from airflow_provider_akool.emulator.jobs import Job, JobKind

router = APIRouter()
#: Face Swap Pro's router, mounted under ``/api/open/v4``.
router_v4 = APIRouter()

#: Where the picture a Face Swap Pro job changes is: its (first) target's path.
PRO_MEDIA_FIELD = "targetImage[0].path"


async def _create(
    request: Request, kind: JobKind, params: dict[str, Any], media_field: str, media_url: str
) -> Job:
    state = get_state(request)
    sources, targets = params["sourceImage"], params["targetImage"]
    # Akool downloads every input: the media and each face of both lists.
    urls: dict[str, Any] = {} if media_field == PRO_MEDIA_FIELD else {media_field: media_url}
    urls.update({f"targetImage[{i}].path": face["path"] for i, face in enumerate(targets)})
    urls.update({f"sourceImage[{i}].path": face["path"] for i, face in enumerate(sources)})
    fetched = await inputs.fetch_inputs(urls, request, state)
    # The media may be a target's path too (Face Swap Pro): each input once.
    job_inputs = list(dict.fromkeys([media_url, *(face["path"] for face in [*targets, *sources])]))
    with state.lock:
        job = charge_new_job(request, state, kind=kind, params=params, inputs=job_inputs)
        job.extra["source_sample_names"] = [sample_name(f["path"], request, state) for f in sources]
        inputs.remember(job.extra, fetched, media_field)
        job.extra["source_bytes"] = [
            next(
                (item.content for item in fetched if item.field == f"sourceImage[{i}].path" and item.content),
                None,
            )
            for i in range(len(sources))
        ]
        state.add_job(job)
    return job


async def _submit_v3(request: Request, kind: JobKind, media_field: str) -> JSONResponse:
    _, params = await admit_submission(request, lambda body: validation.faceswap(body, media_field))
    job = await _create(request, kind, params, media_field, params[media_field])
    # As reage: the result's final address comes with the submit reply.
    return reply(
        OK, SUBMIT_MESSAGE, {"_id": job.id, "url": job.reported_url(submit=True), "job_id": job.job_id}
    )


@router.post("/faceswap/highquality/specifyimage")
async def specifyimage(request: Request) -> JSONResponse:
    """Submit an image face swap job: ``sourceImage[i]`` replaces ``targetImage[i]`` in ``modifyImage``."""
    return await _submit_v3(request, "specifyimage", "modifyImage")


@router.post("/faceswap/highquality/specifyvideo")
async def specifyvideo(request: Request) -> JSONResponse:
    """Submit a video face swap job: the same with ``modifyVideo``."""
    return await _submit_v3(request, "specifyvideo", "modifyVideo")


@router_v4.post("/faceswap/faceswapByImage")
async def faceswap_by_image(request: Request) -> JSONResponse:
    """Submit a Face Swap Pro job; its reply has no ``url`` (``listbyids`` gives it)."""
    _, params = await admit_submission(request, validation.faceswap_pro)
    job = await _create(request, "faceswapByImage", params, PRO_MEDIA_FIELD, params["targetImage"][0]["path"])
    # The v4 page's reply: msg "OK", only _id and job_id.
    return reply(OK, "OK", {"_id": job.id, "job_id": job.job_id})
