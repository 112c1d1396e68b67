"""Background change: submit (``bg/replace``) and poll (``infobymodelid``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse  # noqa: TC002 - FastAPI resolves route annotations at runtime

from airflow_provider_akool.emulator import inputs, validation
from airflow_provider_akool.emulator.api_common import admit_submission, authorized, base_url, sample_name
from airflow_provider_akool.emulator.envelope import (
    BG_PROCESSING_ERROR,
    NOT_FOUND,
    OK,
    ApiError,
    ParamError,
    reply,
)
from airflow_provider_akool.emulator.jobs import FAIL_MARKER, FAILED, SUCCESS, Job, result_extension

router = APIRouter()

UID = 1432101


def _error_reasons(job: Job, status: int) -> list[dict[str, Any]]:
    if status != FAILED:
        return []
    if job.forced_status is None and job.input_error is not None:
        cause = job.input_error
    elif job.forced_status is None and job.fails:
        cause = f"an input carries the {FAIL_MARKER} marker"
    else:
        cause = "failed through the emulator control API"
    return [{"code": BG_PROCESSING_ERROR, "message": f"background change processing error: {cause}"}]


def _credits(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _info(job: Job, now: float) -> dict[str, Any]:
    status = job.status(now)
    data: dict[str, Any] = {
        "_id": job.id,
        "create_time": int(job.created_at * 1000),
        "uid": UID,
        "type": 3,
        "faceswap_quality": 2,
        "image_id": job.extra["image_id"],
        "image_sub_status": status,
        "image_status": status,
        # What the submission was charged (the seed's reply carries it as a number).
        "deduction_credit": _credits(job.extra.get("credit", 0)),
        "buttons": [],
        "used_buttons": [],
        "upscaled_urls": [],
        "error_reasons": _error_reasons(job, status),
        "__v": 0,
    }
    if status == SUCCESS and job.reported_url():
        data["external_img"] = f"{job.reported_url()}?layer=external"
        data["image"] = job.reported_url()
    return data


@router.post("/content/image/bg/replace")
async def bg_replace(request: Request) -> JSONResponse:
    """Submit a background change job."""
    state, params = await admit_submission(request, validation.background)
    fetched = await inputs.fetch_inputs(
        {"origin_img": params["origin_img"], "template_url": params["template_url"]}, request, state
    )
    with state.lock:
        # Charged with the job's creation under one lock: 1006 when the balance cannot pay for it.
        charged = state.charge("bg_replace")
        now = state.now()
        job = Job(
            id=state.new_object_id(now),
            kind="bg_replace",
            created_at=now,
            queued_seconds=state.config.queued_seconds,
            processing_seconds=state.config.bg_processing_seconds,
            inputs=[params["origin_img"], *([params["template_url"]] if params["template_url"] else [])],
            url="",
            params=params,
            webhook_url=params["webhookUrl"],
        )
        job.url = f"{base_url(request, state)}/media/results/{job.id}.{result_extension(job.kind)}"
        job.extra["image_id"] = str(uuid.uuid4())
        job.extra["credit"] = charged
        job.extra["sample_names"] = {
            name: sample_name(params[name], request, state) for name in ("origin_img", "template_url")
        }
        inputs.remember(job.extra, fetched, "origin_img")
        state.add_job(job)
        data = _info(job, now)
    # The submit reply of the seed: the same record as infobymodelid, _id last, never the result yet.
    data.pop("external_img", None)
    data.pop("image", None)
    data["_id"] = data.pop("_id")
    data["__v"] = data.pop("__v")
    return reply(OK, "OK", data)


@router.get("/content/image/infobymodelid")
async def infobymodelid(request: Request) -> JSONResponse:
    """The record of a background change job; ``image`` appears once it succeeded."""
    state = authorized(request)
    model_id = (request.query_params.get("image_model_id") or "").strip()
    if not model_id:
        raise ParamError("image_model_id", "is required (the _id returned by bg/replace)")
    with state.lock:
        job = state.job(model_id)
        if job is None or job.kind != "bg_replace":
            raise ApiError(NOT_FOUND)
        data = _info(job, state.now())
    return reply(OK, "OK", data)
