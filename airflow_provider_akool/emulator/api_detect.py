"""
Face detect, which Akool serves from another host (``https://sg3.akool.com/detect``) with its own
``{"error_code", "error_msg"}`` envelope. Faces are fake but deterministic, see :mod:`.faces`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_akool.emulator import inputs
from airflow_provider_akool.emulator.api_common import get_state, read_json
from airflow_provider_akool.emulator.envelope import INVALID_TOKEN, MESSAGES, PARAM_ERROR, ApiError
from airflow_provider_akool.emulator.faces import DEFAULT_SIZE, Face, face_count, faces_for, layout
from airflow_provider_akool.emulator.media import pillow_available
from airflow_provider_akool.emulator.validation import is_http_url

router = APIRouter()

MAX_FRAMES = 30


class DetectError(Exception):
    """
    A detect failure, answered as ``{"error_code", "error_msg"}``.

    :param code: The error code (non-zero).
    :param msg: What went wrong, naming the parameter.
    """

    def __init__(self, code: int, msg: str) -> None:
        self.code = code
        self.msg = msg
        super().__init__(msg)


def _detect_error(error: DetectError) -> JSONResponse:
    return JSONResponse({"error_code": error.code, "error_msg": error.msg})


def _check_auth(request: Request) -> None:
    # Whether the detect host wants credentials is unknown: none is fine, a wrong one is refused.
    headers = request.headers
    if not headers.get("authorization", "").strip() and not headers.get("x-api-key", "").strip():
        return
    if get_state(request).authenticate(headers).error is not None:
        raise DetectError(INVALID_TOKEN, MESSAGES[INVALID_TOKEN])


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await read_json(request)
    except ApiError as error:
        raise DetectError(PARAM_ERROR, error.msg) from None
    if not isinstance(body, dict):
        raise DetectError(PARAM_ERROR, "Parameter error: body must be a JSON object")
    single = body.get("single_face", False)
    if not isinstance(single, bool):
        raise DetectError(PARAM_ERROR, "Parameter error: single_face must be a boolean")
    return body


def _inline_faces(data_url: Any) -> list[Face]:
    if not isinstance(data_url, str) or not data_url.startswith("data:image/") or ";base64," not in data_url:
        raise DetectError(PARAM_ERROR, "Parameter error: img must be a data:image/...;base64,... URL")
    try:
        raw = base64.b64decode(data_url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise DetectError(PARAM_ERROR, "Parameter error: img is not valid base64") from None
    if not raw:
        raise DetectError(PARAM_ERROR, "Parameter error: img is empty")
    width, height = DEFAULT_SIZE
    if pillow_available():
        from PIL import Image, UnidentifiedImageError

        try:
            width, height = Image.open(io.BytesIO(raw)).size
        except (UnidentifiedImageError, OSError):
            raise DetectError(PARAM_ERROR, "Parameter error: img is not a readable image") from None
    return layout("img:" + hashlib.sha256(raw).hexdigest(), width, height, 1)


async def _faces_at(url: str, field: str, request: Request) -> list[Face]:
    """The faces of the image at ``url``: downloaded when it is served on loopback (inputs.py)."""
    if not inputs.fetchable(url, request, get_state(request)):
        return faces_for(url)
    fetched = await inputs.fetch(field, url)
    if fetched.error is not None or fetched.content is None or fetched.sha256 is None:
        raise DetectError(PARAM_ERROR, f"Parameter error: {fetched.error or field + ' is too large'}")
    # Placed by the bytes, so two URLs of one object (signed twice) give the same faces; counted by the
    # path's faces-N marker, as for any URL.
    width, height = DEFAULT_SIZE
    if pillow_available():
        from PIL import Image, UnidentifiedImageError

        # Not an image (a video): the default size, as for a URL.
        with contextlib.suppress(UnidentifiedImageError, OSError):
            width, height = Image.open(io.BytesIO(fetched.content)).size
    return layout("img:" + fetched.sha256, width, height, face_count(urlsplit(url).path))


def _faces_json(faces: list[Face]) -> dict[str, Any]:
    return {
        "landmarks": [[list(point) for point in face.landmarks] for face in faces],
        "landmarks_str": [face.landmarks_str for face in faces],
        "region": [list(face.region) for face in faces],
    }


@router.post("/detect")
async def detect(request: Request) -> JSONResponse:
    """Legacy face detect: ``image_url`` or ``img`` (a data URL) -> landmarks per face."""
    started = time.perf_counter()
    try:
        _check_auth(request)
        body = await _body(request)
        if body.get("image_url") not in (None, ""):
            if not is_http_url(body["image_url"]):
                raise DetectError(PARAM_ERROR, "Parameter error: image_url must be an http(s) URL")
            faces = await _faces_at(body["image_url"], "image_url", request)
        elif body.get("img") not in (None, ""):
            faces = _inline_faces(body["img"])
        else:
            raise DetectError(PARAM_ERROR, "Parameter error: image_url or img is required")
    except DetectError as error:
        return _detect_error(error)
    if body.get("single_face"):
        faces = faces[:1]
    return JSONResponse(
        {
            "error_code": 0,
            "error_msg": "SUCCESS",
            **_faces_json(faces),
            "seconds": round(time.perf_counter() - started, 6),
            "trx_id": uuid.uuid4().hex,
        }
    )


@router.post("/interface/detect-api/detect_faces")
async def detect_faces(request: Request) -> JSONResponse:
    """Newer face detect: ``url`` -> ``faces_obj`` keyed by frame (one frame for images)."""
    try:
        _check_auth(request)
        body = await _body(request)
        url = body.get("url")
        if not isinstance(url, str) or not is_http_url(url):
            raise DetectError(PARAM_ERROR, "Parameter error: url is required (an http(s) URL)")
        frames = body.get("num_frames", 1)
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
            raise DetectError(
                PARAM_ERROR, f"Parameter error: num_frames must be an integer in [1, {MAX_FRAMES}]"
            )
        faces = await _faces_at(url, "url", request)
    except DetectError as error:
        return _detect_error(error)
    if body.get("single_face"):
        faces = faces[:1]
    # A still image has one frame whatever was asked; a video repeats its (static) faces per frame.
    count = frames if str(url).split("?", 1)[0].lower().endswith((".mp4", ".mov", ".webm")) else 1
    return JSONResponse(
        {
            "error_code": 0,
            "error_msg": "SUCCESS",
            "faces_obj": {str(index): _faces_json(faces) for index in range(count)},
        }
    )
