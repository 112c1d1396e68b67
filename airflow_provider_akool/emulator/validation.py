"""Strict checks of request parameters; each failure is a 1003 naming the parameter (1007 for >8 faces)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_akool.emulator.envelope import TOO_MANY_FACES, ApiError, ParamError

MAX_FACES = 8
REAGE_RANGE = (-30, 30)
# Generous but finite: the emulator renders real images of this size in memory.
MAX_DIMENSION = 10_000

_OPTS = re.compile(r"-?\d+,-?\d+(?::-?\d+,-?\d+){3}")
_SIZE = re.compile(r"(\d+)x(\d+)")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def is_http_url(value: Any) -> bool:
    """An ``http``/``https`` URL with a host."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def is_int(value: Any) -> bool:
    """A JSON integer; ``true``/``false`` are not integers here even though Python says so."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_url(body: dict[str, Any], name: str) -> str:
    """A required http(s) URL."""
    value = body.get(name)
    if value is None or value == "":
        raise ParamError(name, "is required")
    if not is_http_url(value):
        raise ParamError(name, "must be an http(s) URL")
    return str(value)


def optional_url(body: dict[str, Any], name: str) -> str | None:
    """An optional http(s) URL; ``null`` and ``""`` count as absent."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not is_http_url(value):
        raise ParamError(name, "must be an http(s) URL")
    return str(value)


def require_int(body: dict[str, Any], name: str) -> int:
    """A required JSON integer (may be negative)."""
    value = body.get(name)
    if value is None:
        raise ParamError(name, "is required")
    if not is_int(value):
        raise ParamError(name, "must be an integer")
    return int(value)


def size(body: dict[str, Any], name: str, required: bool) -> tuple[int, int] | None:
    """A ``"WxH"`` size of positive integers."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ParamError(name, 'is required (a size "WxH", e.g. "3840x3840")')
        return None
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ParamError(name, 'must be a size "WxH" of positive integers, e.g. "3840x3840"')
    width, height = int(match.group(1)), int(match.group(2))
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise ParamError(name, f"must have both sides in [1, {MAX_DIMENSION}]")
    return width, height


def reage(body: Any, media_field: str) -> dict[str, Any]:
    """
    Check an ``imgreage``/``vidreage`` body.

    :param body: The decoded JSON body.
    :param media_field: ``modifyImage`` or ``modifyVideo``.
    :return: The normalised parameters.
    """
    if not isinstance(body, dict):
        raise ParamError("body", "must be a JSON object")
    targets = body.get("targetImage")
    if targets is None or targets == []:
        raise ParamError("targetImage", "is required (a non-empty list of {path, opts})")
    if not isinstance(targets, list):
        raise ParamError("targetImage", "must be a list of {path, opts} objects")
    if len(targets) > MAX_FACES:
        raise ApiError(TOO_MANY_FACES)
    for index, target in enumerate(targets):
        if not isinstance(target, dict):
            raise ParamError(f"targetImage[{index}]", "must be an object with path and opts")
        path = target.get("path")
        if not isinstance(path, str) or not path:
            raise ParamError(f"targetImage[{index}].path", "must be a non-empty string")
        opts = target.get("opts")
        if not isinstance(opts, str) or _OPTS.fullmatch(opts) is None:
            raise ParamError(
                f"targetImage[{index}].opts", 'must be four "x,y" integer pairs joined by ":" (landmarks_str)'
            )
    face_reage = body.get("face_reage")
    low, high = REAGE_RANGE
    if not isinstance(face_reage, int) or isinstance(face_reage, bool) or not low <= face_reage <= high:
        raise ParamError("face_reage", f"must be an integer in [{low}, {high}]")
    media = require_url(body, media_field)
    return {
        "targetImage": [{"path": t["path"], "opts": t["opts"]} for t in targets],
        "face_reage": int(face_reage),
        media_field: media,
        "webhookUrl": optional_url(body, "webhookUrl"),
    }


#: Face Swap Pro (v4) takes 1 to 50 pairs.
MAX_PRO_PAIRS = 50
#: The one model Face Swap Pro documents (``model_name``'s default).
PRO_MODEL = "akool_faceswap_image_hq"
# v4's opts come "from crop_landmarks of Face Detection API": the four points of landmarks_str, or more.
_PRO_OPTS = re.compile(r"-?\d+,-?\d+(?::-?\d+,-?\d+){3,}")


def _switch(body: dict[str, Any], name: str, allowed: str) -> int:
    """An optional 0/1 switch; ``true``/``false`` are read as 1/0 (v3 documents 0|1, v4 a boolean)."""
    value = body.get(name)
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if is_int(value) and value in (0, 1):
        return int(value)
    raise ParamError(name, f"must be {allowed}")


def _faces(
    body: dict[str, Any], name: str, opts_pattern: re.Pattern[str], opts_required: bool
) -> list[dict[str, Any]]:
    """A non-empty list of ``{path, opts}``: ``path`` an http(s) URL, ``opts`` landmarks (or absent)."""
    items = body.get(name)
    if items is None or items == []:
        raise ParamError(name, "is required (a non-empty list of {path, opts})")
    if not isinstance(items, list):
        raise ParamError(name, "must be a list of {path, opts} objects")
    faces = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ParamError(f"{name}[{index}]", "must be an object with path and opts")
        path = item.get("path")
        if not is_http_url(path):
            raise ParamError(f"{name}[{index}].path", "must be an http(s) URL")
        opts = item.get("opts")
        if opts is None or opts == "":
            if opts_required:
                raise ParamError(
                    f"{name}[{index}].opts",
                    'is required (four "x,y" integer pairs joined by ":", landmarks_str)',
                )
            opts = None
        elif not isinstance(opts, str) or opts_pattern.fullmatch(opts) is None:
            raise ParamError(
                f"{name}[{index}].opts", 'must be "x,y" integer pairs joined by ":" (landmarks_str)'
            )
        faces.append({"path": path, "opts": opts})
    return faces


def faceswap(body: Any, media_field: str) -> dict[str, Any]:
    """
    Check a ``specifyimage``/``specifyvideo`` body: ``sourceImage[i]`` replaces ``targetImage[i]``.

    :param body: The decoded JSON body.
    :param media_field: ``modifyImage`` or ``modifyVideo``.
    :return: The normalised parameters (``face_enhance`` 0 or 1).
    """
    if not isinstance(body, dict):
        raise ParamError("body", "must be a JSON object")
    targets = _faces(body, "targetImage", _OPTS, opts_required=True)
    sources = _faces(body, "sourceImage", _OPTS, opts_required=True)
    if len(targets) > MAX_FACES or len(sources) > MAX_FACES:
        raise ApiError(TOO_MANY_FACES)
    if len(sources) != len(targets):
        raise ParamError(
            "sourceImage",
            f"must have one item per targetImage item (pairs by position): {len(sources)} for {len(targets)}",
        )
    face_enhance = _switch(body, "face_enhance", "0 (Classic) or 1 (HD Optimized)")
    return {
        "sourceImage": sources,
        "targetImage": targets,
        "face_enhance": face_enhance,
        media_field: require_url(body, media_field),
        "webhookUrl": optional_url(body, "webhookUrl"),
    }


def faceswap_pro(body: Any) -> dict[str, Any]:
    """
    Check a Face Swap Pro (``v4/faceswap/faceswapByImage``) body: 1 to 50 pairs, ``opts`` optional only for a
    single pair, no ``modifyImage`` (each target's ``path`` is the picture changed).
    """
    if not isinstance(body, dict):
        raise ParamError("body", "must be a JSON object")
    raw_sources, raw_targets = body.get("sourceImage"), body.get("targetImage")
    single = isinstance(raw_sources, list) and len(raw_sources) == 1
    single = single and isinstance(raw_targets, list) and len(raw_targets) == 1
    targets = _faces(body, "targetImage", _PRO_OPTS, opts_required=not single)
    sources = _faces(body, "sourceImage", _PRO_OPTS, opts_required=not single)
    for name, items in (("sourceImage", sources), ("targetImage", targets)):
        if len(items) > MAX_PRO_PAIRS:
            raise ParamError(name, f"accepts at most {MAX_PRO_PAIRS} items, got {len(items)}")
    if len(sources) != len(targets):
        raise ParamError(
            "sourceImage",
            f"must have one item per targetImage item (pairs by position): {len(sources)} for {len(targets)}",
        )
    model = body.get("model_name")
    if model is not None and model != PRO_MODEL:
        raise ParamError("model_name", f'must be "{PRO_MODEL}" (or left out)')
    return {
        "sourceImage": sources,
        "targetImage": targets,
        "model_name": PRO_MODEL,
        "face_enhance": _switch(body, "face_enhance", "a boolean (true or false)"),
        "single_face_mode": _switch(body, "single_face_mode", "a boolean (true or false)"),
        "webhookUrl": optional_url(body, "webhookUrl"),
    }


def background(body: Any) -> dict[str, Any]:
    """Check a ``bg/replace`` body (the seed's four combinations: template, colour, both, neither)."""
    if not isinstance(body, dict):
        raise ParamError("body", "must be a JSON object")
    params: dict[str, Any] = {
        "origin_img": require_url(body, "origin_img"),
        "modify_origin_img_size": size(body, "modify_origin_img_size", required=True),
        "overlay_origin_x": require_int(body, "overlay_origin_x"),
        "overlay_origin_y": require_int(body, "overlay_origin_y"),
        "canvas_size": size(body, "canvas_size", required=True),
    }
    color = body.get("color_code")
    if color is not None and color != "" and (not isinstance(color, str) or _COLOR.fullmatch(color) is None):
        raise ParamError("color_code", 'must be a hexadecimal colour "#rrggbb", e.g. "#aafbe3"')
    params["color_code"] = color or None
    template = optional_url(body, "template_url")
    params["template_url"] = template
    template_size = size(body, "modify_template_size", required=False)
    template_xy = [body.get("overlay_template_x"), body.get("overlay_template_y")]
    for name, value in zip(("overlay_template_x", "overlay_template_y"), template_xy, strict=True):
        if value is not None and not is_int(value):
            raise ParamError(name, "must be an integer")
    if template is None:
        # The seed: "Once you use template_url, you can carry three additional parameters".
        for name, given in (
            ("modify_template_size", template_size is not None),
            ("overlay_template_x", template_xy[0] is not None),
            ("overlay_template_y", template_xy[1] is not None),
        ):
            if given:
                raise ParamError(name, "is only allowed together with template_url")
    params["modify_template_size"] = template_size
    params["overlay_template_x"] = template_xy[0] or 0
    params["overlay_template_y"] = template_xy[1] or 0
    remove_bg = body.get("removeBg")
    if remove_bg is not None and not isinstance(remove_bg, bool):
        raise ParamError("removeBg", "must be a boolean")
    params["removeBg"] = remove_bg
    params["webhookUrl"] = optional_url(body, "webhookUrl")
    return params


def credentials(body: Any) -> tuple[str, str]:
    """The ``clientId`` and ``clientSecret`` of a ``getToken`` body."""
    if not isinstance(body, dict):
        raise ParamError("body", "must be a JSON object")
    values = []
    for name in ("clientId", "clientSecret"):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise ParamError(name, "is required (a non-empty string)")
        values.append(value)
    return values[0], values[1]
