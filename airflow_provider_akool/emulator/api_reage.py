"""
Reage: submit (image and video); and for reage and face swap alike (``api_faceswap.py``), poll by ``_id`` list
and cancel by ``job_id`` list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_akool.emulator import inputs, validation
from airflow_provider_akool.emulator.api_common import (
    admit_submission,
    authorized,
    charge_new_job,
    read_json,
    split_ids,
)
from airflow_provider_akool.emulator.envelope import (
    NOT_FOUND,
    OK,
    SUBMIT_MESSAGE,
    ApiError,
    ParamError,
    reply,
)
from airflow_provider_akool.emulator.jobs import FAILED, PROCESSING, QUEUED, VIDEO_KINDS, Job, JobKind, iso_ms

# The faceswap_status of an entry poisoned in the ``status`` form: outside 1..4, as no client can read it.
UNKNOWN_STATUS = 7

router = APIRouter()

# One fixed emulated account, so every result carries the same owner as on a real account.
USER_ID = "64d985c5571729d3e2999477"
UID = 378337
# The seed shows faceswap_type 1 with image 1 for an image job; 2 and 0 for video are the emulator's guess.
VIDEO_DURATION_SECONDS = 10


async def _submit(request: Request, kind: JobKind, media_field: str) -> JSONResponse:
    state, params = await admit_submission(request, lambda body: validation.reage(body, media_field))
    fetched = await inputs.fetch_inputs(
        {
            media_field: params[media_field],
            **{f"targetImage[{i}].path": target["path"] for i, target in enumerate(params["targetImage"])},
        },
        request,
        state,
    )
    media_url = params[media_field]
    job_inputs = [media_url, *(target["path"] for target in params["targetImage"])]
    with state.lock:
        job = charge_new_job(request, state, kind=kind, params=params, inputs=job_inputs)
        inputs.remember(job.extra, fetched, media_field)
        state.add_job(job)
    return reply(
        OK, SUBMIT_MESSAGE, {"_id": job.id, "url": job.reported_url(submit=True), "job_id": job.job_id}
    )


@router.post("/faceswap/highquality/imgreage")
async def imgreage(request: Request) -> JSONResponse:
    """Submit an image reage job."""
    return await _submit(request, "imgreage", "modifyImage")


@router.post("/faceswap/highquality/vidreage")
async def vidreage(request: Request) -> JSONResponse:
    """Submit a video reage job."""
    return await _submit(request, "vidreage", "modifyVideo")


def _result(job: Job, now: float) -> dict[str, Any]:
    status = job.status(now)
    video = job.kind in VIDEO_KINDS
    return {
        "faceswap_type": 2 if video else 1,
        "faceswap_quality": 2,
        "faceswap_status": status,
        "deduction_status": 1,
        "image": 0 if video else 1,
        "video_duration": VIDEO_DURATION_SECONDS if video else 0,
        "deduction_duration": VIDEO_DURATION_SECONDS if video else 0,
        # The seed shows 0 for a queued job; afterwards the time of the last status change, in ms.
        "update_time": 0 if status == QUEUED else int(job.last_change(now) * 1000),
        "_id": job.id,
        "userId": USER_ID,
        "uid": UID,
        "url": job.reported_url(),
        "createdAt": iso_ms(job.created_at),
        "job_id": job.job_id,
    }


def _entry(job: Job, now: float) -> Any:
    """The job's ``listbyids`` entry, poisoned as its markers or the control API say."""
    entry = _result(job, now)
    poison = job.entry_poison
    form = poison[0] if poison else None
    if form == "status":
        entry["faceswap_status"] = UNKNOWN_STATUS
    elif form == "id":
        del entry["_id"]
    elif form == "object":
        return f"entry of {job.id} unavailable"
    elif form == "types":
        entry["url"] = 12345
        entry["job_id"] = [job.job_id]
    return entry


def _emulator_order(jobs: list[Job], asked: list[str]) -> list[Job]:
    # Newest first; if that happens to be the order asked, oldest first instead. Either way the reply
    # never mirrors the request, so a client matching results by position fails in tests, not in production.
    ordered = sorted(jobs, key=lambda job: (job.created_at, job.id), reverse=True)
    asked_known = [job_id for job_id in dict.fromkeys(asked) if any(job.id == job_id for job in jobs)]
    if len(ordered) > 1 and [job.id for job in ordered] == asked_known:
        ordered.reverse()
    return ordered


@router.get("/faceswap/result/listbyids")
async def listbyids(request: Request) -> JSONResponse:
    """
    Results of reage and face swap jobs by ``_id`` (any mix in one request); unknown ids are left out, the
    order is the emulator's own.
    """
    state = authorized(request)
    ids = split_ids(request.query_params.get("_ids"))
    if not ids:
        raise ParamError("_ids", "is required (comma-separated _id values)")
    bound = state.config.max_listbyids
    if len(ids) > bound:
        raise ParamError("_ids", f"accepts at most {bound} ids per request, got {len(ids)}")
    with state.lock:
        now = state.now()
        jobs = [
            job for job in map(state.job, dict.fromkeys(ids)) if job is not None and job.kind != "bg_replace"
        ]
        # Poisoned "stray" entries go into every reply, asked for or not: what a client sees of a poisoned
        # job that shares a batch with the ids it asked for.
        asked = {job.id for job in jobs}
        strays = [
            job
            for job in state.jobs.values()
            if job.id not in asked and job.kind != "bg_replace" and (job.entry_poison or ("", False))[1]
        ]
        result = [_entry(job, now) for job in [*_emulator_order(jobs, ids), *strays]]
    return reply(OK, "OK", {"result": result})


@router.post("/faceswap/job/del")
async def job_del(request: Request) -> JSONResponse:
    """
    Cancel reage and face swap jobs by ``job_id``: queued or processing ones fail (status 4), finished ones
    stay.
    """
    state = authorized(request)
    body = await read_json(request)
    raw = body.get("job_ids") if isinstance(body, dict) else None
    if not isinstance(raw, str) or not split_ids(raw):
        raise ParamError("job_ids", "is required (a comma-separated string of job_id values)")
    with state.lock:
        jobs = state.jobs_by_job_id(split_ids(raw))
        if not jobs:
            raise ApiError(NOT_FOUND)
        now = state.now()
        for job in jobs:
            if job.status(now) in (QUEUED, PROCESSING):
                job.force(FAILED, now)
                job.cancelled = True
    # The seed's reply has no data at all.
    return JSONResponse({"code": OK, "msg": "OK"})
