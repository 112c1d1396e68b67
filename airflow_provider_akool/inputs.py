"""
Media inputs from object storage: an ``s3://``/``gs://`` URI or ``ObjectStoragePath`` becomes a URL Akool can
download, signed by the object store's own filesystem.

Akool downloads every input (``modifyImage``, ``targetImage[].path``, ``origin_img``...) from a URL, so an
object in a private bucket needs a signed URL. :func:`check_media` accepts, after rendering and before any
request, either an http(s) URL or an object URI whose fsspec filesystem can sign (``s3fs`` through the Amazon
provider, ``gcsfs``...); a backend that cannot (a local path, ``file://``, ``memory://``) fails there, naming
the parameter. :func:`signed_url`, called right before the submission, checks that the object is there and
readable (one ``info``/HEAD request to the store), signs it with the filesystem's ``sign()`` for
``expiry`` seconds, registers the URL with Airflow's secrets masker and logs the object, never the URL.

The signed URL lives only in the request to Akool: the operator's fields (what the UI shows as rendered
templates) keep the URI, and no return value carries the URL (the detect operator returns the URI as each
face's ``path``, which the reage operator signs again).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_provider_akool import validation
from airflow_provider_akool.exceptions import AkoolInputError, AkoolValidationError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

#: How long a signed input URL stays valid by default: Akool downloads inputs when a job leaves its queue,
#: and its own advice is to look at the input of a job not done within 3 hours; a day leaves room for a
#: long queue without leaving the object readable for a week.
DEFAULT_INPUT_URL_EXPIRY = 24 * 3600.0
#: The longest validity S3 (SigV4) and GCS (V4) signed URLs may have.
MAX_INPUT_URL_EXPIRY = 7 * 24 * 3600.0

ALLOWED = (
    "an http(s) URL, or an object-storage URI or ObjectStoragePath whose filesystem can sign URLs "
    "(s3://aws_default@bucket/key with the amazon extra, gs://google_cloud_default@bucket/key)"
)
# Query parameters of signed URLs that grant access (S3 SigV2/SigV4, GCS, Azure SAS): masked wherever they
# appear, even when a URL is printed in pieces or decoded.
_SECRET_PARAMS = ("signature", "sig", "token", "credential", "x-amz-security-token")


def is_object_path(value: Any) -> bool:
    """Whether ``value`` names an object or file rather than an http(s) URL: a URI with a scheme, a path."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(value, (ObjectStoragePath, os.PathLike)):
        return True
    if not isinstance(value, str):
        return False
    text = value.strip()
    if text.startswith(("/", "~", "./", "../")):
        return True
    scheme = urlsplit(text).scheme if "://" in text else ""
    return bool(scheme) and scheme.lower() not in ("http", "https")


def check_media(name: str, value: Any) -> Any:
    """
    Return a media parameter in the form the operator keeps: an http(s) URL (stripped) or the object path.

    Only the form is checked here, with no request: an object's filesystem must be able to sign URLs and
    the connection the URI names must exist. Whether the object is there is checked by :func:`signed_url`.

    :raises AkoolValidationError: naming ``name`` and the allowed form.
    """
    if not is_object_path(value):
        try:
            return validation.http_url(name, value)
        except AkoolValidationError:
            raise _invalid(name, value, "") from None
    path = _as_path(name, value)
    protocol = _protocol(path)
    if protocol in ("", "file", "local"):
        raise _invalid(
            name,
            value,
            " (a file on this machine: Akool downloads inputs from the internet, so upload it to an object "
            "store or serve it over http(s))",
        )
    fs_class = _filesystem_class(name, value, protocol)
    if not _can_sign(fs_class):
        raise _invalid(name, value, f" (the {protocol}:// filesystem cannot sign URLs for Akool to download)")
    conn_id = _conn_id(path)
    if conn_id:
        from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise AkoolValidationError(
                f"{name} {_shown(value)} names the Airflow connection {conn_id!r}, which does not exist: "
                f"create it, or name another ({protocol}://<conn_id>@bucket/key)"
            ) from None
    return value


def stand_in(name: str, value: Any) -> Any:
    """Return ``value`` checked by :func:`check_media`, an object path replaced by an http(s) stand-in."""
    checked = check_media(name, value)
    return _STAND_IN if is_object_path(checked) else checked


# What request builders see of an object path while the other parameters are checked (nothing is sent).
_STAND_IN = "https://object-storage.invalid/input"


def signed_url(name: str, value: Any, *, expiry: float, logger: Any = None) -> str:
    """
    Return the URL Akool downloads ``value`` from: an http(s) URL as it is, an object signed for ``expiry``.

    The object is looked up first (one ``info`` request), so a missing object, a folder, or credentials the
    store refuses fail here, before anything is submitted. The URL and its signature are registered with
    Airflow's secrets masker; the log line names the object, its size and the expiry, never the URL.

    :param logger: where to log the signing (the task's logger); this module's by default.
    :raises AkoolValidationError: ``value`` is not of an allowed form (see :func:`check_media`).
    :raises AkoolInputError: the object cannot be read or signed.
    """
    checked = check_media(name, value)
    if not is_object_path(checked):
        return str(checked)
    path = _as_path(name, checked)
    shown = _shown(checked)
    fs = _filesystem(name, path, shown)
    key = path.path
    try:
        info = fs.info(key)
    except FileNotFoundError:
        raise AkoolInputError(
            f"{name} {shown} does not exist: nothing was submitted to Akool. Check the bucket and key, or "
            "that the task writing it ran first"
        ) from None
    except PermissionError as error:
        raise AkoolInputError(
            f"{name} {shown} cannot be read with the credentials of its connection ({_reason(error)}): "
            "nothing was submitted to Akool. Check the connection's keys and their permission to read "
            "the object"
        ) from None
    except Exception as error:
        raise AkoolInputError(
            f"{name} {shown} could not be looked up ({_reason(error)}): nothing was submitted to Akool"
        ) from None
    if info.get("type") == "directory":
        raise AkoolInputError(f"{name} {shown} is a folder, not an object: name the file to send to Akool")
    try:
        url = fs.sign(key, expiration=int(expiry))
    except Exception as error:
        raise AkoolInputError(
            f"{name} {shown} could not be signed ({_reason(error)}): nothing was submitted to Akool"
        ) from None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AkoolInputError(
            f"{name} {shown}: its filesystem signed it as something other than an http(s) URL; Akool "
            "cannot download that"
        )
    hide_signed_url(url)
    until = datetime.now(timezone.utc) + timedelta(seconds=expiry)
    (logger or log).info(
        "Signed %s %s (%s bytes) for Akool to download, valid for %.0f s (until %s)",
        name,
        shown,
        info.get("size", "?"),
        expiry,
        until.isoformat(timespec="seconds"),
    )
    return url


def expiry_seconds(value: Any, name: str = "input_url_expiry") -> float:
    """Return the validity of signed input URLs in seconds: positive, at most 7 days."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    seconds = validation.seconds(name, value)
    if seconds > MAX_INPUT_URL_EXPIRY:
        raise AkoolValidationError(
            f"{name} must be a positive number of seconds up to {MAX_INPUT_URL_EXPIRY:.0f} (7 days, the "
            f"longest S3 and GCS signed URLs last); got {value!r}"
        )
    return seconds


def hide_signed_url(url: str) -> None:
    """Register ``url`` and the access-granting values of its query with Airflow's secrets masker."""
    from airflow.sdk.log import mask_secret

    mask_secret(url)
    query = urlsplit(url).query
    mask_secret(query)
    for key, item in parse_qsl(query, keep_blank_values=True):
        if item and any(part in key.lower() for part in _SECRET_PARAMS):
            mask_secret(item)
            # Servers and clients print it percent-encoded or decoded: hide both.
            if unquote(item) != item:
                mask_secret(unquote(item))
    for raw in query.split("&"):
        key, _, item = raw.partition("=")
        if item and any(part in key.lower() for part in _SECRET_PARAMS):
            mask_secret(item)


def _as_path(name: str, value: Any) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    raw = os.fspath(value).strip()
    if "://" not in raw:
        raw = os.path.expanduser(raw)
    try:
        return ObjectStoragePath(raw)
    except ValueError as error:  # Airflow 3.3 refuses a scheme unknown to fsspec when building the path
        raise _invalid(name, value, f" ({error})") from None


def _protocol(path: ObjectStoragePath) -> str:
    protocol = path.protocol
    if isinstance(protocol, (tuple, list)):
        protocol = protocol[0] if protocol else ""
    return str(protocol or "")


def _conn_id(path: ObjectStoragePath) -> str | None:
    # Airflow 3.1's ObjectStoragePath has no conn_id attribute; both keep it in storage_options.
    conn_id = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
    return str(conn_id) if conn_id else None


def _filesystem_class(name: str, value: Any, protocol: str) -> type:
    import fsspec

    try:
        fs_class: type = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as error:
        hint = " (pip install airflow-provider-akool[amazon])" if protocol in ("s3", "s3a") else ""
        why = f" (no installed filesystem serves {protocol}://{hint}: {error})"
        raise _invalid(name, value, why) from None
    return fs_class


def _can_sign(fs_class: type) -> bool:
    from fsspec import AbstractFileSystem

    return getattr(fs_class, "sign", None) is not AbstractFileSystem.sign


def _filesystem(name: str, path: ObjectStoragePath, shown: str) -> AbstractFileSystem:
    try:
        return path.fs
    except Exception as error:
        raise AkoolInputError(
            f"{name} {shown}: its filesystem could not be set up ({_reason(error)}): nothing was submitted "
            "to Akool"
        ) from None


def _shown(value: Any) -> str:
    """The object as messages and logs name it: its URI with the connection id, never credentials."""
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def _invalid(name: str, value: Any, why: str) -> AkoolValidationError:
    shown = repr(str(value)) if not isinstance(value, str) else repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return AkoolValidationError(f"{name} must be {ALLOWED}; got {shown}{why}")
