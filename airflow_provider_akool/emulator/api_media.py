"""Downloads: sample inputs, job results (404 until success and after expiry), benchmark blobs."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_akool.emulator.api_common import get_state
from airflow_provider_akool.emulator.compose import compose
from airflow_provider_akool.emulator.jobs import SUCCESS, VIDEO_KINDS, Job, result_extension
from airflow_provider_akool.emulator.media import (
    IMAGE_TYPES,
    MP4_HEADER,
    SAMPLE_VIDEO_BYTES,
    faceswap_image,
    payload,
    reage_image,
    sample_image,
    sample_video,
)

router = APIRouter()

MAX_BLOB_BYTES = 1 << 40
_RESULT = re.compile(r"([0-9a-f]{24})\.(jpg|mp4|png)")


def _not_found(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=404)


def _stream(total: int, media_type: str, header: bytes = b"") -> StreamingResponse:
    return StreamingResponse(
        payload(total, header), media_type=media_type, headers={"Content-Length": str(total)}
    )


@router.get("/media/samples/{name}")
async def sample(name: str) -> Response:
    """A generated input: any ``*.jpg``/``*.jpeg``/``*.png`` name is an image, ``*.mp4`` fake video bytes."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext == "mp4":
        return StreamingResponse(
            sample_video(), media_type="video/mp4", headers={"Content-Length": str(SAMPLE_VIDEO_BYTES)}
        )
    if ext not in IMAGE_TYPES:
        return _not_found("samples are *.jpg, *.jpeg, *.png or *.mp4")
    content = await run_in_threadpool(sample_image, name, ext)
    # Without Pillow every image is a PNG whatever its name; the type says what the bytes are.
    media_type = "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"
    return Response(content, media_type=media_type)


def _render(job: Job) -> tuple[bytes, str]:
    if job.kind == "bg_replace":
        return compose(job.params, job.extra["sample_names"]), "image/png"
    targets = job.params["targetImage"]
    if job.kind == "imgreage":
        opts = [target["opts"] for target in targets]
        return reage_image(
            job.params["face_reage"], job.extra.get("sample_name"), job.extra.get("input_bytes"), opts
        )
    sources = job.params["sourceImage"]
    pairs = [
        {
            "target_opts": target["opts"],
            "source_opts": source["opts"],
            "source_sample": (job.extra.get("source_sample_names") or [None] * len(sources))[index],
            "source_bytes": (job.extra.get("source_bytes") or [None] * len(sources))[index],
            "source_key": source["path"],
        }
        for index, (source, target) in enumerate(zip(sources, targets, strict=True))
    ]
    return faceswap_image(job.extra.get("sample_name"), job.extra.get("input_bytes"), pairs)


@router.get("/media/results/{filename}")
async def result(filename: str, request: Request) -> Response:
    """A job's result, rendered on first download and cached."""
    state = get_state(request)
    match = _RESULT.fullmatch(filename)
    job = state.job(match.group(1)) if match else None
    if match is None or job is None or result_extension(job.kind) != match.group(2):
        return _not_found("no such result")
    with state.lock:
        now = state.now()
        finished = job.finished_at(now)
        status = job.status(now)
        if status != SUCCESS or finished is None:
            return _not_found("the result is not available (job not successful)")
        if now - finished > state.config.result_ttl_seconds:
            state.results.pop(job.id, None)
            return _not_found("the result has expired")
        cached = state.results.get(job.id)
    if job.kind in VIDEO_KINDS:
        return _stream(state.config.video_result_bytes, "video/mp4", MP4_HEADER)
    if cached is None:
        cached = await run_in_threadpool(_render, job)
        with state.lock:
            state.results[job.id] = cached
    content, media_type = cached
    return Response(content, media_type=media_type)


@router.get("/media/blob/{nbytes}")
async def blob(nbytes: int) -> Response:
    """``nbytes`` deterministic bytes (byte ``i`` is ``pattern_block()[i % 65536]``), streamed."""
    if not 0 <= nbytes <= MAX_BLOB_BYTES:
        return _not_found(f"nbytes must be in [0, {MAX_BLOB_BYTES}]")
    return _stream(nbytes, "application/octet-stream")
