"""
The Akool protocol without I/O: what to send for each call, and what a reply means.

Both transports of :class:`~airflow_provider_akool.hooks.akool.AkoolHook` (requests for workers, httpx
for triggers) only move bytes: they send an :class:`AkoolRequest`, hand the reply to :func:`interpret`,
and ask :func:`is_retryable` whether to try again. The sync and async paths therefore behave the same by
construction, and everything here is tested without a network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urljoin

from airflow_provider_akool import result_hosts, validation
from airflow_provider_akool.deprecation import renamed
from airflow_provider_akool.exceptions import (
    ERROR_CODES,
    AkoolConnectionError,
    AkoolError,
    AkoolFaceDetectError,
    AkoolPartialReplyError,
    AkoolRateLimitError,
    AkoolResponseError,
    AkoolResultUnavailableError,
    AkoolServerError,
    AkoolSubmitOutcomeUnknownError,
    AkoolUnreadableResultError,
    error_for_code,
)
from airflow_provider_akool.models import (
    BackgroundChangeJob,
    BackgroundChangeResult,
    DetectedFace,
    DetectedFaces,
    JobStatus,
    ReageJob,
    ReageResult,
)

DEFAULT_BASE_URL = "https://openapi.akool.com"
#: The most bytes of an API reply the hook reads (result downloads are not API replies: not capped here).
#: The largest real reply is a ``listbyids`` of one batch (about 600 bytes per entry, so ~30 KB for 50 ids,
#: ~60 KB at the emulator's bound of 100) or face detect of a crowded image or video (a few hundred bytes
#: per face and frame). 4 MiB is more than fifty times that, yet with the 20 requests one triggerer loop
#: has in flight (``MAX_CONCURRENT_REQUESTS``) a hostile or broken server can hold at most ~80 MiB.
MAX_REPLY_BYTES = 4 * 1024 * 1024
DEFAULT_DETECT_URL = "https://sg3.akool.com/detect"
API_PREFIX = "/api/open/v3"
SUCCESS_CODE = 1000

T = TypeVar("T")
Envelope = Literal["akool", "detect"]


@dataclass(frozen=True)
class HttpReply:
    """What a transport received: the status, the headers (keys lower-cased) and the body."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class AkoolRequest(Generic[T]):
    """
    One Akool call, ready to send.

    :param endpoint: a short name for logs, errors and the emulator's ledger (``imgreage``, ``listbyids``...).
    :param path: a path under the base URL, or an absolute URL (face detect lives on another host).
    :param parse: turns the reply's JSON object into the call's value; raises ``AkoolResponseError``.
    :param creates_job: True for a submission: it is retried only when the request surely created nothing.
    :param authenticated: whether to send the credentials (getToken carries its own in the body).
    :param envelope: ``akool`` (``{"code", "msg", "data"}``) or ``detect`` (``{"error_code", "error_msg"}``).
    """

    endpoint: str
    method: Literal["GET", "POST"]
    path: str
    parse: Callable[[Mapping[str, Any]], T]
    params: Mapping[str, str] | None = None
    json: Mapping[str, Any] | None = None
    creates_job: bool = False
    authenticated: bool = True
    envelope: Envelope = "akool"

    def url(self, base_url: str) -> str:
        """Return the absolute URL of this request against ``base_url``."""
        if "://" in self.path:
            return self.path
        return urljoin(base_url.rstrip("/") + "/", self.path.lstrip("/"))


# --- Interpreting replies ------------------------------------------------------------------------


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header: delay seconds or an HTTP date (relative to the header's own clock)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _snippet(content: bytes) -> str:
    text = content[:60].decode("utf-8", "replace")
    return " ".join(text.split()) + ("..." if len(content) > 60 else "")


def reply_too_large(endpoint: str, size: int | None = None) -> AkoolResponseError:
    """Return the error of a reply larger than :data:`MAX_REPLY_BYTES` (``size``: as announced, if it was)."""
    announced = f" ({size} bytes announced)" if size is not None else ""
    return AkoolResponseError(
        f"the reply is larger than the {MAX_REPLY_BYTES} bytes an Akool API reply may have{announced}; "
        "the rest was not read",
        endpoint=endpoint,
    )


def announced_length(headers: Mapping[str, str]) -> int | None:
    """Return the ``Content-Length`` a reply announced, or None when it announced none we can read."""
    value = headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class BoundedBody:
    """
    A streamed reply's body, refused past :data:`MAX_REPLY_BYTES` (``AkoolResponseError``): when its headers
    announce more, and as soon as the chunks read pass it, so that no more is ever read. Both transports
    feed it their chunks.
    """

    def __init__(self, endpoint: str, headers: Mapping[str, str]) -> None:
        self.endpoint = endpoint
        self.limit = MAX_REPLY_BYTES
        announced = announced_length(headers)
        if announced is not None and announced > self.limit:
            raise reply_too_large(endpoint, announced)
        self._body = bytearray()

    def add(self, chunk: bytes) -> None:
        """Append ``chunk``; raise once the body is past the limit."""
        self._body += chunk
        if len(self._body) > self.limit:
            raise reply_too_large(self.endpoint)

    def content(self) -> bytes:
        """The body read so far."""
        return bytes(self._body)


def interpret(request: AkoolRequest[T], reply: HttpReply) -> T:
    """
    Return what the reply means for ``request``, or raise the matching :class:`AkoolError`.

    Akool answers errors with HTTP 200 and a business code, so the body decides; HTTP 429 and 5xx come
    from gateways in front of it and are recognised first.
    """
    endpoint = request.endpoint
    if reply.status == 429:
        raise AkoolRateLimitError(
            "HTTP 429 Too Many Requests",
            endpoint=endpoint,
            retry_after=retry_after_seconds(reply.headers.get("retry-after")),
        )
    if reply.status >= 500:
        raise AkoolServerError(
            f"HTTP {reply.status} from the server: {_snippet(reply.content)!r}",
            http_status=reply.status,
            endpoint=endpoint,
        )
    try:
        payload = json.loads(reply.content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly nested JSON
        raise AkoolResponseError(
            f"the reply is not JSON (HTTP {reply.status}, body starts {_snippet(reply.content)!r})",
            endpoint=endpoint,
        ) from None
    if not isinstance(payload, dict):
        raise AkoolResponseError(
            f"the reply is JSON but not an object (HTTP {reply.status})", endpoint=endpoint
        )
    _raise_for_code(payload, request.envelope, endpoint, reply.status)
    if not 200 <= reply.status < 300:
        raise AkoolResponseError(f"unexpected HTTP {reply.status} with a success body", endpoint=endpoint)
    try:
        return request.parse(payload)
    except AkoolError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        # A safety net: the parsers check fields, but a reply of an unforeseen shape must still surface
        # as a clear error, never as a bare KeyError.
        raise AkoolResponseError(f"the reply has an unexpected shape ({err!r})", endpoint=endpoint) from None


def _raise_for_code(payload: Mapping[str, Any], envelope: Envelope, endpoint: str, http_status: int) -> None:
    if envelope == "detect":
        code = payload.get("error_code")
        message = payload.get("error_msg")
        ok = code == 0
    else:
        code = payload.get("code")
        message = payload.get("msg")
        ok = code == SUCCESS_CODE
    if isinstance(code, bool) or not isinstance(code, int):
        field = "error_code" if envelope == "detect" else "code"
        raise AkoolResponseError(
            f"the reply has no integer {field} (HTTP {http_status})",
            endpoint=endpoint,
        )
    if ok:
        return
    text = message if isinstance(message, str) else ""
    if envelope == "detect" and code not in ERROR_CODES:
        raise AkoolFaceDetectError(text or "face detect failed", code=code, endpoint=endpoint)
    raise error_for_code(code, text, endpoint)


# --- Field access for parsers -------------------------------------------------------------------


def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], endpoint: str) -> Any:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python, but a status of ``true`` is not a status.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise AkoolResponseError(f"the reply lacks a valid {key!r}", endpoint=endpoint)
    return value


def _optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _result_url(obj: Mapping[str, Any], key: str) -> str | None:
    """A result URL, or None when the reply has none that is http(s): ``javascript:`` never reaches a link."""
    value = _optional_str(obj, key)
    try:
        return validation.http_url(key, value) if value is not None else None
    except validation.AkoolValidationError:
        return None


def _data(payload: Mapping[str, Any], endpoint: str) -> Mapping[str, Any]:
    data: Mapping[str, Any] = _require(payload, "data", dict, endpoint)
    return data


def _status(obj: Mapping[str, Any], key: str, endpoint: str) -> JobStatus:
    raw = _require(obj, key, int, endpoint)
    try:
        return JobStatus(raw)
    except ValueError:
        raise AkoolResponseError(f"the reply has an unknown {key} {raw!r}", endpoint=endpoint) from None


# --- Authentication -----------------------------------------------------------------------------


def build_get_token(client_id: str, client_secret: str) -> AkoolRequest[str]:
    """Exchange clientId/clientSecret for a bearer token (``POST getToken``)."""

    def parse(payload: Mapping[str, Any]) -> str:
        # The token sits beside the code, not under ``data``.
        token: str = _require(payload, "token", str, "getToken")
        return token

    return AkoolRequest(
        endpoint="getToken",
        method="POST",
        path=f"{API_PREFIX}/getToken",
        json={"clientId": client_id, "clientSecret": client_secret},
        parse=parse,
        authenticated=False,
    )


# --- Face detect --------------------------------------------------------------------------------


def build_detect_faces(
    detect_url: str, image_url: str, single_face: bool = True
) -> AkoolRequest[DetectedFaces]:
    """Detect the faces of an image (the legacy ``detect`` endpoint that reage's ``opts`` come from)."""
    image_url = validation.http_url("image_url", image_url)
    single_face = validation.boolean("single_face", single_face)

    def parse(payload: Mapping[str, Any]) -> DetectedFaces:
        landmarks = _require(payload, "landmarks_str", list, "detect")
        regions = payload.get("region")
        regions = regions if isinstance(regions, list) and len(regions) == len(landmarks) else None
        faces = []
        for index, opts in enumerate(landmarks):
            if not isinstance(opts, str):
                raise AkoolResponseError(
                    "the reply has a landmarks_str that is not a string", endpoint="detect"
                )
            region = regions[index] if regions else None
            faces.append(DetectedFace(opts=opts, region=list(region) if isinstance(region, list) else None))
        return DetectedFaces(image_url=image_url, faces=tuple(faces))

    return AkoolRequest(
        endpoint="detect",
        method="POST",
        path=detect_url,
        json={"single_face": single_face, "image_url": image_url},
        parse=parse,
        envelope="detect",
    )


# --- Reage --------------------------------------------------------------------------------------


def parse_job_reply(endpoint: str) -> Callable[[Mapping[str, Any]], ReageJob]:
    """
    Return the parse of a submission whose reply names ``_id``, ``job_id`` and the result ``url``.

    Reage's replies have this shape, and so do face swap's: a kind's own request can take it.
    """

    def parse(payload: Mapping[str, Any]) -> ReageJob:
        data = _data(payload, endpoint)
        return ReageJob(
            id=_require(data, "_id", str, endpoint),
            url=_result_url(data, "url"),
            job_id=_optional_str(data, "job_id"),
        )

    return parse


def _build_reage(
    endpoint: Literal["imgreage", "vidreage"],
    media_key: Literal["modifyImage", "modifyVideo"],
    media_name: str,
    media_url: str,
    face_reage: Any,
    target_image: Any,
    webhook_url: str | None,
) -> AkoolRequest[ReageJob]:
    body: dict[str, Any] = {
        "targetImage": validation.target_image(target_image),
        "face_reage": validation.face_reage(face_reage),
        media_key: validation.http_url(media_name, media_url),
    }
    webhook = validation.optional_http_url("webhook_url", webhook_url)
    if webhook:
        body["webhookUrl"] = webhook
    return AkoolRequest(
        endpoint=endpoint,
        method="POST",
        path=f"{API_PREFIX}/faceswap/highquality/{endpoint}",
        json=body,
        parse=parse_job_reply(endpoint),
        creates_job=True,
    )


def build_image_reage(
    modify_image: str, face_reage: Any, target_image: Any, webhook_url: str | None = None
) -> AkoolRequest[ReageJob]:
    """Submit an image reage job (``POST faceswap/highquality/imgreage``)."""
    return _build_reage(
        "imgreage", "modifyImage", "modify_image", modify_image, face_reage, target_image, webhook_url
    )


def build_video_reage(
    modify_video: str, face_reage: Any, target_image: Any, webhook_url: str | None = None
) -> AkoolRequest[ReageJob]:
    """Submit a video reage job (``POST faceswap/highquality/vidreage``)."""
    return _build_reage(
        "vidreage", "modifyVideo", "modify_video", modify_video, face_reage, target_image, webhook_url
    )


@dataclass(frozen=True)
class ReageEntries:
    """
    A ``listbyids`` reply judged entry by entry.

    :param results: the readable entries of the ids asked for, by ``_id``.
    :param errors: the ids asked for whose entry could not be read, each with its own error.
    :param ignored: entries that cannot be attributed to any id (not an object, no string ``_id``): their
        id, if it was asked for, is simply missing, which a wait judges by its not-found grace.
    """

    results: dict[str, ReageResult]
    errors: dict[str, AkoolUnreadableResultError]
    ignored: int = 0

    def partial_error(self, found: Mapping[str, object] | None = None) -> AkoolPartialReplyError | None:
        """
        Return the error naming the unreadable ids, or None when every entry asked for was read.

        :param found: what the error carries as the readable results (default: :attr:`results`), for
            callers that convert them first.
        """
        if not self.errors:
            return None
        names = "; ".join(error.message for error in self.errors.values())
        return AkoolPartialReplyError(
            f"the entries of {len(self.errors)} id(s) could not be read: {names}",
            found=dict(self.results if found is None else found),
            errors=dict(self.errors),
            endpoint="listbyids",
        )

    def raise_for_errors(self) -> None:
        """Raise :meth:`partial_error`, if there is one."""
        error = self.partial_error()
        if error is not None:
            raise error


def _entry_id(item: Any) -> str | None:
    """The ``_id`` an entry belongs to, or None when it cannot be attributed to any id."""
    if not isinstance(item, Mapping):
        return None
    akool_id = item.get("_id")
    return akool_id if isinstance(akool_id, str) and akool_id else None


def _parse_reage_result(akool_id: str, item: Mapping[str, Any]) -> ReageResult:
    """Read one attributed entry; raise :class:`AkoolUnreadableResultError` naming its id."""
    endpoint = "listbyids"
    raw = item.get("faceswap_status")
    if isinstance(raw, bool) or not isinstance(raw, int) or raw not in {s.value for s in JobStatus}:
        raise AkoolUnreadableResultError(
            f"the entry of {akool_id} has faceswap_status {raw!r}, not 1, 2, 3 or 4",
            akool_id=akool_id,
            endpoint=endpoint,
        )
    for key in ("url", "job_id", "createdAt"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise AkoolUnreadableResultError(
                f"the entry of {akool_id} has a {key} that is not a string ({type(value).__name__})",
                akool_id=akool_id,
                endpoint=endpoint,
            )
    created = item.get("createdAt")
    return ReageResult(
        id=akool_id,
        status=JobStatus(raw),
        url=_result_url(item, "url"),
        job_id=_optional_str(item, "job_id"),
        created_at=created if isinstance(created, str) else None,
    )


def parse_reage_entries(payload: Mapping[str, Any], ids: Sequence[str]) -> ReageEntries:
    """
    Judge each entry of a ``listbyids`` reply on its own, keeping those of ``ids``.

    The envelope itself (``data``, ``data.result``) must be readable, or the whole reply is an error. Then
    each entry stands alone: an unreadable entry of an id asked for becomes that id's error; one that
    names no id is counted in ``ignored``; entries of ids not asked for are dropped unread. An id that
    appears twice with the same contents is read once; with different contents neither can be trusted
    to be the current one, so the id gets an error (and its wait polls again).
    """
    data = _data(payload, "listbyids")
    items = _require(data, "result", list, "listbyids")
    wanted = set(ids)
    by_id: dict[str, list[Mapping[str, Any]]] = {}
    ignored = 0
    for item in items:
        akool_id = _entry_id(item)
        if akool_id is None:
            ignored += 1
        elif akool_id in wanted:
            by_id.setdefault(akool_id, []).append(item)
    results: dict[str, ReageResult] = {}
    errors: dict[str, AkoolUnreadableResultError] = {}
    for akool_id, entries in by_id.items():
        if any(entry != entries[0] for entry in entries[1:]):
            errors[akool_id] = AkoolUnreadableResultError(
                f"{akool_id} appears {len(entries)} times in the reply with different contents",
                akool_id=akool_id,
                endpoint="listbyids",
            )
            continue
        try:
            results[akool_id] = _parse_reage_result(akool_id, entries[0])
        except AkoolUnreadableResultError as error:
            errors[akool_id] = error
    return ReageEntries(results=results, errors=errors, ignored=ignored)


def build_list_reage_entries(ids: Sequence[str]) -> AkoolRequest[ReageEntries]:
    """
    Ask for the results of up to one batch of reage ``_id`` values, judged entry by entry.

    What the shared poller uses: one unreadable entry is an error of its own id only (see
    :func:`parse_reage_entries`).
    """
    ids = validation.id_list("ids", list(ids))
    return AkoolRequest(
        endpoint="listbyids",
        method="GET",
        path=f"{API_PREFIX}/faceswap/result/listbyids",
        params={"_ids": ",".join(ids)},
        parse=lambda payload: parse_reage_entries(payload, ids),
    )


def build_list_reage_results(ids: Sequence[str]) -> AkoolRequest[dict[str, ReageResult]]:
    """
    Ask for the results of up to one batch of reage ``_id`` values (``GET faceswap/result/listbyids``).

    The reply's order is not documented and unknown ids may be left out, so the value is a dict keyed by
    ``_id``: callers look their ids up, never rely on positions. An unreadable entry of an id asked for
    raises :class:`AkoolPartialReplyError` naming it; entries of other ids are not read.
    """
    entries_request = build_list_reage_entries(ids)

    def parse(payload: Mapping[str, Any]) -> dict[str, ReageResult]:
        entries = entries_request.parse(payload)
        entries.raise_for_errors()
        return entries.results

    return AkoolRequest(
        endpoint=entries_request.endpoint,
        method=entries_request.method,
        path=entries_request.path,
        params=entries_request.params,
        parse=parse,
    )


def build_cancel_reage(job_ids: Sequence[str]) -> AkoolRequest[None]:
    """Cancel reage jobs by ``job_id`` (``POST faceswap/job/del``, ids joined by commas)."""
    job_ids = validation.id_list("job_ids", list(job_ids))

    def parse(payload: Mapping[str, Any]) -> None:
        return None

    # Cancelling twice is harmless, so this POST retries like a GET.
    return AkoolRequest(
        endpoint="job_del",
        method="POST",
        path=f"{API_PREFIX}/faceswap/job/del",
        json={"job_ids": ",".join(job_ids)},
        parse=parse,
    )


# --- Background change --------------------------------------------------------------------------


def build_background_change(
    *,
    origin_img: str,
    canvas_size: Any,
    modify_origin_img_size: Any,
    overlay_origin_x: Any,
    overlay_origin_y: Any,
    color_code: str | None = None,
    template_url: str | None = None,
    modify_template_size: Any = None,
    overlay_template_x: Any = None,
    overlay_template_y: Any = None,
    remove_bg: Any = None,
    webhook_url: str | None = None,
) -> AkoolRequest[BackgroundChangeJob]:
    """Submit a background change (``POST content/image/bg/replace``; deprecated by Akool, still served)."""
    body: dict[str, Any] = {
        "origin_img": validation.http_url("origin_img", origin_img),
        "canvas_size": validation.size("canvas_size", canvas_size),
        "modify_origin_img_size": validation.size("modify_origin_img_size", modify_origin_img_size),
        "overlay_origin_x": validation.integer("overlay_origin_x", overlay_origin_x),
        "overlay_origin_y": validation.integer("overlay_origin_y", overlay_origin_y),
    }
    if color_code not in (None, ""):
        body["color_code"] = validation.colour("color_code", color_code)
    template = validation.optional_http_url("template_url", template_url)
    template_params = {
        "modify_template_size": modify_template_size,
        "overlay_template_x": overlay_template_x,
        "overlay_template_y": overlay_template_y,
    }
    if template:
        body["template_url"] = template
        if modify_template_size not in (None, ""):
            body["modify_template_size"] = validation.size("modify_template_size", modify_template_size)
        for name in ("overlay_template_x", "overlay_template_y"):
            if template_params[name] not in (None, ""):
                body[name] = validation.integer(name, template_params[name])
    else:
        for name, value in template_params.items():
            if value not in (None, ""):
                raise validation.AkoolValidationError(
                    f"{name} may only be given with template_url; got {value!r} without a template_url"
                )
    if remove_bg is not None:
        body["removeBg"] = validation.boolean("remove_bg", remove_bg)
    webhook = validation.optional_http_url("webhook_url", webhook_url)
    if webhook:
        body["webhookUrl"] = webhook

    def parse(payload: Mapping[str, Any]) -> BackgroundChangeJob:
        data = _data(payload, "bg_replace")
        return BackgroundChangeJob(
            id=_require(data, "_id", str, "bg_replace"),
            status=_status(data, "image_status", "bg_replace"),
        )

    return AkoolRequest(
        endpoint="bg_replace",
        method="POST",
        path=f"{API_PREFIX}/content/image/bg/replace",
        json=body,
        parse=parse,
        creates_job=True,
    )


def build_background_change_result(image_model_id: str) -> AkoolRequest[BackgroundChangeResult]:
    """Ask for a background-change result (``GET content/image/infobymodelid``)."""
    (image_model_id,) = validation.id_list("image_model_id", image_model_id)

    def parse(payload: Mapping[str, Any]) -> BackgroundChangeResult:
        data = _data(payload, "infobymodelid")
        reasons = data.get("error_reasons")
        return BackgroundChangeResult(
            id=_optional_str(data, "_id") or image_model_id,
            status=_status(data, "image_status", "infobymodelid"),
            image_url=_result_url(data, "image"),
            external_img=_optional_str(data, "external_img"),
            error_reasons=list(reasons) if isinstance(reasons, list) else [],
        )

    return AkoolRequest(
        endpoint="infobymodelid",
        method="GET",
        path=f"{API_PREFIX}/content/image/infobymodelid",
        params={"image_model_id": image_model_id},
        parse=parse,
    )


# --- Credits ------------------------------------------------------------------------------------

#: A credit balance as Akool gives it: a JSON number, kept an ``int`` when Akool sent an integer.
Credit = int | float


def parse_credit(payload: Mapping[str, Any]) -> Credit:
    """Read ``data.credit`` of a ``quota/info`` reply: a finite number, never a bool or a string."""
    data = _data(payload, "quota_info")
    credit = data.get("credit")
    if isinstance(credit, bool) or not isinstance(credit, (int, float)) or not math.isfinite(credit):
        shown = "absent" if credit is None else f"a {type(credit).__name__}"
        raise AkoolResponseError(
            f"the reply's data.credit is {shown}, not a number of credits", endpoint="quota_info"
        )
    return credit


def build_get_credit() -> AkoolRequest[Credit]:
    """Ask for the account's credit balance (``GET faceswap/quota/info``)."""
    return AkoolRequest(
        endpoint="quota_info",
        method="GET",
        path=f"{API_PREFIX}/faceswap/quota/info",
        parse=parse_credit,
    )


# --- Retries ------------------------------------------------------------------------------------


def is_retryable(request: AkoolRequest[Any], error: BaseException) -> bool:
    """
    Return whether ``request`` may be sent again after ``error``; one rule for both transports.

    Reads retry on every error whose class is ``retryable``: connection errors, timeouts, 5xx, 429, 1005
    and 1015. A submission retries only when the failed attempt surely created nothing: the connection
    was refused before the request was sent, or Akool answered with a retryable code (1005, 1015, 429:
    an answer, not a lost reply). After a read timeout, a dropped reply or a 5xx the job may exist, and
    sending again could pay for it twice.
    """
    if not (isinstance(error, AkoolError) and error.retryable):
        return False
    if isinstance(error, AkoolConnectionError):
        return not (request.creates_job and error.request_sent)
    if isinstance(error, AkoolServerError):
        return not request.creates_job
    return True


def explain_failure(request: AkoolRequest[Any], error: AkoolError) -> AkoolError:
    """
    Return the error to raise once retries are over.

    A submission that failed after its request may have reached Akool becomes
    :class:`AkoolSubmitOutcomeUnknownError`, whose message says the job may exist and why it was not resent.
    """
    ambiguous = (isinstance(error, AkoolConnectionError) and error.request_sent) or isinstance(
        error, (AkoolServerError, AkoolResponseError)
    )
    if not (request.creates_job and ambiguous):
        return error
    return AkoolSubmitOutcomeUnknownError(
        f"the submission may have reached Akool and created a job, but no usable reply came back "
        f"({error.message}). It was not sent again, because a second job would be paid for twice: "
        "check your Akool jobs (or webhook callbacks) before retrying the task",
        endpoint=request.endpoint,
    )


# --- Result downloads ---------------------------------------------------------------------------

RESULT_RETENTION_DAYS = 7


def redirect_target(url: str, status: int, headers: Mapping[str, str]) -> str | None:
    """Return where a download's reply redirects to (absolute), or None when it is not a redirect."""
    location = headers.get("location")
    if status not in (301, 302, 303, 307, 308) or not location:
        return None
    return urljoin(url, location)


class ResultRedirects:
    """
    The hops of one result download, followed by hand, with no I/O: which URL to check, which to request.

    Both transports drive it the same way, resolving and sending themselves::

        hops = ResultRedirects(url, own_host_private=...)
        while True:
            target = hops.check(resolve(hops.next_url()))  # result_hosts.check: raises on a refused host
            response = get(target, allow_redirects=False)
            if not hops.redirected(response.status, response.headers):
                break  # the file's reply (or its error: download_error)
            response.close()

    Every URL requested has passed :func:`result_hosts.check` first, the first one and each redirect's;
    a relative ``Location`` is taken relative to the URL that sent it; a download redirected more than
    ``max_redirects`` times fails with :class:`AkoolResponseError`.

    :param url: the result URL (http or https, checked by the caller).
    :param own_host_private: whether the connection's own host is a non-public one (every host is then
        allowed).
    :param max_redirects: how many redirects to follow.
    """

    def __init__(
        self, url: str, *, own_host_private: bool, max_redirects: int = result_hosts.MAX_REDIRECTS
    ) -> None:
        self._target = url
        self._previous: str | None = None
        self._own_host_private = own_host_private
        self.max_redirects = max_redirects
        #: How many redirects were followed so far.
        self.redirects = 0
        self._checked = False

    def next_url(self) -> str:
        """Return the URL to resolve and :meth:`check` next; raise when it is one redirect too many."""
        if self.redirects > self.max_redirects:
            raise AkoolResponseError(
                f"the result download was redirected more than {self.max_redirects} times",
                endpoint="download",
            )
        return self._target

    def check(self, addresses: Sequence[str]) -> str:
        """
        Check the next URL's host, resolved to ``addresses``, and return the URL to request.

        :raises AkoolResultHostError: the host is a loopback, private or link-local one (and the
            connection's own host is not), named with the URL that redirected there.
        """
        target = self.next_url()
        result_hosts.check(
            target, addresses, own_host_private=self._own_host_private, redirected_from=self._previous
        )
        self._checked = True
        return target

    def redirected(self, status: int, headers: Mapping[str, str]) -> bool:
        """Take the reply to the checked URL (``headers`` lower-cased): True when it redirects, to follow."""
        if not self._checked:
            raise RuntimeError("a download requested a URL that did not pass ResultRedirects.check first")
        self._checked = False
        following = redirect_target(self._target, status, headers)
        if following is None:
            return False
        self._previous, self._target = self._target, following
        self.redirects += 1
        return True


def download_error(status: int, headers: Mapping[str, str]) -> AkoolError | None:
    """Return the error a result download's HTTP status means, or None when the file is there."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return AkoolRateLimitError(
            "HTTP 429 Too Many Requests",
            endpoint="download",
            retry_after=retry_after_seconds(headers.get("retry-after")),
        )
    if status >= 500:
        return AkoolServerError(
            f"HTTP {status} from the file server", http_status=status, endpoint="download"
        )
    return AkoolResultUnavailableError(
        f"the result file is not available (HTTP {status}): it has expired (Akool keeps results for "
        f"{RESULT_RETENTION_DAYS} days) or the job did not produce it",
        http_status=status,
        endpoint="download",
    )


#: Names of before the one vocabulary (issue 21), kept as deprecated aliases.
__getattr__ = renamed(__name__, {"build_image_result": "build_background_change_result"})
