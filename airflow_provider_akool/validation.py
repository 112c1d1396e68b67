"""
Checks of user input, run before any request is sent.

Each function takes the parameter's name, returns the value in the form Akool wants, and raises
:class:`~airflow_provider_akool.exceptions.AkoolValidationError` naming the parameter and the allowed
form. Operators call them after template rendering, and the hook calls them again, so a bad value never
costs an API call whichever way it arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_akool.exceptions import AkoolValidationError

FACE_REAGE_RANGE = (-30, 30)
MAX_FACES = 8

# ASCII only: Unicode digits and separators would pass a plain \d or \s and then reach Akool or int().
_OPTS = re.compile(r"^-?\d+,-?\d+(?::-?\d+,-?\d+){3}$", re.ASCII)
_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$", re.ASCII)
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$", re.ASCII)
_INT = re.compile(r"^\s*[+-]?\d+\s*$", re.ASCII)


def _fail(name: str, allowed: str, value: Any) -> AkoolValidationError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return AkoolValidationError(f"{name} must be {allowed}; got {shown}")


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int; a templated string of digits is accepted, a bool or a float is not."""
    if minimum is not None and maximum is not None:
        allowed = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        allowed = f"an integer of at least {minimum}"
    else:
        allowed = "an integer"
    if isinstance(value, bool):
        raise _fail(name, allowed, value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT.match(value):
        number = int(value)
    else:
        raise _fail(name, allowed, value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _fail(name, allowed, value)
    return number


def _number(name: str, value: Any, allowed: str) -> int | float:
    """Return ``value`` as a number (an int for a whole templated string); a bool or anything else fails."""
    if isinstance(value, bool):
        raise _fail(name, allowed, value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _INT.match(value):
        return int(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _fail(name, allowed, value) from None
    raise _fail(name, allowed, value)


def seconds(name: str, value: Any) -> float:
    """Return a positive duration in seconds; a templated string of a number is accepted, a bool is not."""
    allowed = "a positive number of seconds"
    number = float(_number(name, value, allowed))
    if not number > 0 or number == float("inf"):
        raise _fail(name, allowed, value)
    return number


def non_negative_number(name: str, value: Any) -> int | float:
    """Return a finite number >= 0 (an int when whole); a templated string is accepted, a bool is not."""
    allowed = "a number of at least 0 (such as 50 or 12.5)"
    number = _number(name, value, allowed)
    # NaN fails both comparisons; infinity is no threshold.
    if not number >= 0 or number == float("inf"):
        raise _fail(name, allowed, value)
    return number


def face_reage(value: Any, name: str = "face_reage") -> int:
    """Return the reage amount: an integer in [-30, 30] (positive ages, negative rejuvenates)."""
    low, high = FACE_REAGE_RANGE
    return integer(name, value, minimum=low, maximum=high)


def http_url(name: str, value: Any) -> str:
    """Return ``value`` if it is an absolute http(s) URL."""
    allowed = "an http:// or https:// URL"
    if not isinstance(value, str):
        raise _fail(name, allowed, value)
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket, a host that changes under NFKC normalisation
        raise _fail(name, allowed, value) from None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise _fail(name, allowed, value)
    return url


def optional_http_url(name: str, value: Any) -> str | None:
    """Return ``value`` as an http(s) URL, or None when it is None or empty."""
    if value is None or value == "":
        return None
    return http_url(name, value)


def face_opts(name: str, value: Any) -> str:
    """Return face landmarks ``opts``: four ``x,y`` integer pairs joined by ``:``."""
    if not isinstance(value, str) or not _OPTS.match(value.strip()):
        raise _fail(
            name,
            'four "x,y" integer pairs joined by ":" (e.g. "2804,2182:3607,1897:3341,2566:3519,2920")',
            value,
        )
    return value.strip()


def target_image(
    value: Any, name: str = "target_image", *, path: Callable[[str, Any], Any] | None = None
) -> list[dict[str, Any]]:
    """
    Return the faces to reage: a list of 1 to 8 ``{"path": <http(s) URL>, "opts": <landmarks>}``.

    :param path: checks each ``path`` (by default :func:`http_url`); operators pass one that also takes
        object-storage URIs, signed only when the job is submitted.
    """
    check_path = path or http_url
    allowed = f'a list of 1 to {MAX_FACES} {{"path": <http(s) URL>, "opts": "x,y:x,y:x,y:x,y"}} objects'
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(name, allowed, value)
    if len(value) > MAX_FACES:
        raise AkoolValidationError(f"{name} must be {allowed}; got {len(value)} faces")
    faces: list[dict[str, Any]] = []
    for index, face in enumerate(value):
        if not isinstance(face, Mapping) or set(face) != {"path", "opts"}:
            raise _fail(f"{name}[{index}]", 'an object with exactly the keys "path" and "opts"', face)
        faces.append(
            {
                "path": check_path(f"{name}[{index}].path", face["path"]),
                "opts": face_opts(f"{name}[{index}].opts", face["opts"]),
            }
        )
    return faces


def size(name: str, value: Any) -> str:
    """Return a size as Akool's ``"WxH"``; accepts ``"3840x3840"`` or ``(3840, 3840)``."""
    allowed = 'a size "WxH" or (width, height) of positive integers'
    width: Any
    height: Any
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise _fail(name, allowed, value)
        width, height = int(match.group(1)), int(match.group(2))
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        width, height = value
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
            raise _fail(name, allowed, value)
    else:
        raise _fail(name, allowed, value)
    if width <= 0 or height <= 0:
        raise _fail(name, allowed, value)
    return f"{width}x{height}"


def colour(name: str, value: Any) -> str:
    """Return a colour as ``#rrggbb``."""
    if not isinstance(value, str) or not _COLOUR.match(value.strip()):
        raise _fail(name, 'a colour "#rrggbb" (six hex digits)', value)
    return value.strip().lower()


def boolean(name: str, value: Any) -> bool:
    """Return a bool; templated ``"true"``/``"false"`` are accepted."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _fail(name, "true or false", value)


def id_list(name: str, value: Any) -> list[str]:
    """Return one id or many as a non-empty list of distinct non-empty strings, order kept."""
    allowed = "one id or a non-empty list of ids (non-empty strings without commas)"
    items: Iterable[Any]
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise _fail(name, allowed, value)
    ids: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or "," in item:
            raise _fail(name, allowed, value)
        if item.strip() not in ids:
            ids.append(item.strip())
    if not ids:
        raise _fail(name, allowed, value)
    return ids


def collect_ids(name: str, value: Any, key: str) -> list[str]:
    """
    Return ids from one id, a list of them, or the return dicts of this provider's operators (their ``key``).

    Any iterable is taken (an XCom of a mapped task is a lazy sequence, not a list); whatever is not an id
    is reported by :func:`id_list`, naming the parameter.
    """

    def flatten(item: Any) -> list[Any]:
        if isinstance(item, str):
            return [item]
        if isinstance(item, Mapping):
            return [item.get(key)]
        if isinstance(item, Iterable):
            return [found for sub in item for found in flatten(sub)]
        return [item]

    return id_list(name, flatten(value))
