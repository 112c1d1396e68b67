"""
Face swap: image (``specifyimage``), video (``specifyvideo``) and Face Swap Pro (v4 ``faceswapByImage``).

Jobs of reage's family: polled through the same ``listbyids`` (so this module reuses reage's fetch, and the
kinds give reage's poller key: face-swap and reage ids of one triggerer ride in one polling round),
cancelled through the same ``job/del``, called back with ``type`` "faceswap". A submission's reply reads as
reage's (``{_id, job_id, url}``; Face Swap Pro's has no ``url``, which ``listbyids`` gives later).

Used by :class:`~airflow_provider_akool.operators.faceswap.AkoolImageFaceSwapOperator`,
:class:`~airflow_provider_akool.operators.faceswap.AkoolVideoFaceSwapOperator`,
:class:`~airflow_provider_akool.operators.faceswap.AkoolFaceSwapProOperator` and
:class:`~airflow_provider_akool.sensors.faceswap.AkoolFaceSwapSensor`; they wait through the generic
:class:`~airflow_provider_akool.triggers.base.AkoolKindTrigger`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_akool import protocol, validation
from airflow_provider_akool.exceptions import AkoolValidationError
from airflow_provider_akool.kinds.base import KIND_TRIGGER, BuildRequest, JobKind, MediaInput, register
from airflow_provider_akool.kinds.reage import REAGE

if TYPE_CHECKING:
    from airflow_provider_akool.models import ReageJob

#: Pairs a Face Swap Pro job takes (v3 takes ``validation.MAX_FACES``).
MAX_PRO_PAIRS = 50
#: Face Swap Pro's one model (``model_name``).
PRO_MODEL = "akool_faceswap_image_hq"
V4_PREFIX = "/api/open/v4"
# Face Swap Pro's ``opts``: four "x,y" landmarks, or a longer crop-landmarks string of the same form.
_PRO_OPTS = re.compile(r"^-?\d+,-?\d+(?::-?\d+,-?\d+){3,}$", re.ASCII)


def face_enhance_flag(value: Any, name: str = "face_enhance") -> bool:
    """Return ``face_enhance`` as a bool: True/False, 0/1 or a templated ``"true"``/``"1"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "0", "1"):
        return value.strip().lower() in ("true", "1")
    raise AkoolValidationError(
        f"{name} must be true (HD Optimized) or false (Classic), or 1 or 0; got {value!r}"
    )


def pro_faces(value: Any, name: str, *, opts_required: bool) -> list[dict[str, str]]:
    """
    Check Face Swap Pro's ``sourceImage``/``targetImage``: 1 to 50 ``{"path", "opts"}``; ``opts`` may be
    left out only when ``opts_required`` is False (a single pair).
    """
    allowed = (
        f'a list of 1 to {MAX_PRO_PAIRS} {{"path": <http(s) URL>, "opts": "x,y:x,y:x,y:x,y"}} objects '
        '("opts" may be left out for a single pair)'
    )
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple) or not value or len(value) > MAX_PRO_PAIRS:
        raise AkoolValidationError(f"{name} must be {allowed}; got {_count_or_repr(value)}")
    faces: list[dict[str, str]] = []
    for index, face in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(face, Mapping) or not set(face) <= {"path", "opts"} or "path" not in face:
            raise AkoolValidationError(
                f'{where} must be an object with "path" and optional "opts"; got {face!r}'
            )
        item = {"path": validation.http_url(f"{where}.path", face["path"])}
        opts = face.get("opts")
        if opts is None or opts == "":
            if opts_required:
                raise AkoolValidationError(
                    f"{where}.opts is required for more than one pair: the face's landmarks "
                    '"x,y:x,y:x,y:x,y" (as face detect gives them)'
                )
        elif not isinstance(opts, str) or not _PRO_OPTS.match(opts.strip()):
            raise AkoolValidationError(
                f'{where}.opts must be "x,y" integer pairs joined by ":" (four or more); got {opts!r}'
            )
        else:
            item["opts"] = opts.strip()
        faces.append(item)
    return faces


def _count_or_repr(value: Any) -> str:
    return f"{len(value)} items" if isinstance(value, list | tuple) and value else repr(value)


def _with_webhook(body: dict[str, Any], webhook_url: Any) -> dict[str, Any]:
    webhook = validation.optional_http_url("webhook_url", webhook_url)
    if webhook:
        body["webhookUrl"] = webhook
    return body


def faceswap_request(params: Mapping[str, Any]) -> protocol.AkoolRequest[ReageJob]:
    """
    ``specifyvideo`` when ``params`` name a ``modify_video``, else ``specifyimage``.

    ``params``: ``source_image`` and ``target_image`` (pairs by position, ``{"path", "opts"}`` each, 1 to 8),
    ``modify_image`` or ``modify_video``, ``face_enhance``, ``webhook_url``; media signed.
    """
    targets = validation.target_image(params["target_image"])
    sources = validation.target_image(params["source_image"], "source_image")
    if len(sources) != len(targets):
        raise AkoolValidationError(
            f"source_image must have one face per target_image face (pairs by position): "
            f"{len(sources)} for {len(targets)}"
        )
    if params.get("modify_video"):
        endpoint, media = (
            "specifyvideo",
            {"modifyVideo": validation.http_url("modify_video", params["modify_video"])},
        )
    else:
        endpoint, media = (
            "specifyimage",
            {"modifyImage": validation.http_url("modify_image", params["modify_image"])},
        )
    body = {
        "sourceImage": sources,
        "targetImage": targets,
        "face_enhance": int(face_enhance_flag(params.get("face_enhance", False))),
        **media,
    }
    return protocol.AkoolRequest(
        endpoint=endpoint,
        method="POST",
        path=f"{protocol.API_PREFIX}/faceswap/highquality/{endpoint}",
        json=_with_webhook(body, params.get("webhook_url")),
        parse=protocol.parse_job_reply(endpoint),
        creates_job=True,
    )


def faceswap_pro_request(params: Mapping[str, Any]) -> protocol.AkoolRequest[ReageJob]:
    """
    Face Swap Pro (``POST /api/open/v4/faceswap/faceswapByImage``): ``source_image`` and ``target_image``
    pairs (the targets' ``path`` is the picture changed), ``face_enhance``, ``single_face_mode``.
    """
    given = params["source_image"], params["target_image"]
    single = all(isinstance(v, Mapping) or (isinstance(v, list | tuple) and len(v) == 1) for v in given)
    sources = pro_faces(given[0], "source_image", opts_required=not single)
    targets = pro_faces(given[1], "target_image", opts_required=not single)
    if len(sources) != len(targets):
        raise AkoolValidationError(
            f"source_image must have one face per target_image face (pairs by position): "
            f"{len(sources)} for {len(targets)}"
        )
    body: dict[str, Any] = {
        "sourceImage": sources,
        "targetImage": targets,
        "model_name": PRO_MODEL,
        "face_enhance": face_enhance_flag(params.get("face_enhance", False)),
    }
    if params.get("single_face_mode") is not None:
        body["single_face_mode"] = validation.boolean("single_face_mode", params["single_face_mode"])
    return protocol.AkoolRequest(
        endpoint="faceswapByImage",
        method="POST",
        path=f"{V4_PREFIX}/faceswap/faceswapByImage",
        json=_with_webhook(body, params.get("webhook_url")),
        parse=protocol.parse_job_reply("faceswapByImage"),
        creates_job=True,
    )


def _of_reage_family(name: str, request: BuildRequest, inputs: tuple[MediaInput, ...]) -> JobKind:
    """
    Register a kind of reage's family: reage's description (polled by ``listbyids`` in reage's rounds,
    cancelled by ``job/del``) with its own name, request and inputs, waited for by the generic trigger.
    """
    return register(replace(REAGE, name=name, request=request, inputs=inputs, trigger=KIND_TRIGGER))


_FACES = MediaInput("source_image", "image", key="path"), MediaInput("target_image", "image", key="path")

#: Image and video face swap: polled and cancelled as reage is, in reage's shared rounds.
FACESWAP = _of_reage_family(
    "faceswap",
    faceswap_request,
    (MediaInput("modify_image", "image"), MediaInput("modify_video", "video"), *_FACES),
)

#: Face Swap Pro: the picture changed is ``modify_image`` (the targets' path); the same polls and cancel.
FACESWAP_PRO = _of_reage_family(
    "faceswap pro", faceswap_pro_request, (MediaInput("modify_image", "image"), *_FACES)
)

__all__ = ["FACESWAP", "FACESWAP_PRO", "MAX_PRO_PAIRS", "faceswap_pro_request", "faceswap_request"]
