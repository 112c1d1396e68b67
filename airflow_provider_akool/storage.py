"""
Durable results: copy an Akool result file to a place of the user's choosing before Akool drops it.

Akool keeps results for 7 days. :func:`keep_result` streams one to a local path or to any URI that
Airflow's ``ObjectStoragePath`` takes (``file://``, ``s3://``, ``gs://``, ``memory://``...), through the
user's own fsspec backend and Airflow connection (``s3://aws_default@bucket/prefix/``).
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import uuid
from collections.abc import Iterable
from posixpath import splitext
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import fsspec
from airflow.sdk import ObjectStoragePath

from airflow_provider_akool.exceptions import (
    AkoolConnectionError,
    AkoolResultUnavailableError,
    AkoolValidationError,
)
from airflow_provider_akool.protocol import RESULT_RETENTION_DAYS

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from airflow_provider_akool.hooks.akool import AkoolHook

log = logging.getLogger(__name__)

#: Protocols that are the worker's own disk, where ``os.replace`` gives a truly atomic rename.
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
DEFAULT_EXTENSION = ".bin"
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
# The id becomes a file name: nothing that could climb out of the folder or hide the file.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Fixed for Akool's own types: mimetypes reads the system's mime.types, whose first pick varies (``.jpe``).
_PREFERRED_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "video/mp4": ".mp4",
    "image/webp": ".webp",
}


def keep_result(
    hook: AkoolHook, url: str, output_path: str | os.PathLike[str] | ObjectStoragePath, *, akool_id: str
) -> str:
    """
    Download the result at ``url`` to ``output_path`` and return where it was kept.

    The file is streamed in chunks (constant memory whatever its size) to a temporary sibling of the final
    name, checked against the ``Content-Length`` the server sent, then renamed into place; on any failure
    the temporary is removed, so the final name never holds a partial file.

    :param hook: the hook that downloads (``AkoolHook.stream_result``).
    :param url: the result URL Akool gave.
    :param output_path: a local path, an ``ObjectStoragePath`` URI, or an ``ObjectStoragePath``. A folder
        (ends with ``/``, or is an existing directory) receives ``<akool_id>.<ext>``, the extension taken
        from the URL (else from the ``Content-Type``, else ``.bin``); anything else is the full file name.
    :param akool_id: the Akool ``_id`` of the job: the file name in a folder, and named in errors.
    :return: the final location: an absolute path for a local path, else the URI (with its connection id).
    :raises AkoolResultUnavailableError: the file has expired (after 7 days) or was never produced.
    """
    if not isinstance(akool_id, str) or not _SAFE_ID.match(akool_id):
        raise AkoolValidationError(f"akool_id must be an Akool id such as a 24-hex _id; got {akool_id!r}")
    target, is_folder = _target(output_path)
    # Resolved before the download, so a store that cannot be written costs no request.
    fs = None if target.protocol in LOCAL_PROTOCOLS else _filesystem(target)
    headers: dict[str, str] = {}
    try:
        with hook.stream_result(url, headers=headers) as chunks:
            final = target / f"{akool_id}{_extension(url, headers)}" if is_folder else target
            size = _write_atomically(final, fs, chunks, _expected_size(headers))
    except AkoolResultUnavailableError as error:
        raise AkoolResultUnavailableError(
            f"the result of Akool job {akool_id} can no longer be downloaded (HTTP {error.http_status}): "
            f"Akool keeps results for {RESULT_RETENTION_DAYS} days only, so a result older than that (or of "
            "a job that produced none) is gone; run the job again to get a new one",
            http_status=error.http_status,
            endpoint=error.endpoint,
        ) from error
    # A path without a scheme stays a path (absolute: the worker's working directory means nothing later).
    location = os.path.abspath(final.path) if not final.protocol else str(final)
    log.info("Kept the result of Akool job %s (%s bytes) at %s", akool_id, size, location)
    return location


def _target(output_path: str | os.PathLike[str] | ObjectStoragePath) -> tuple[ObjectStoragePath, bool]:
    """Return the path ``output_path`` names and whether it names a folder."""
    if isinstance(output_path, ObjectStoragePath):
        return output_path, _is_dir(output_path)
    try:
        raw = os.fspath(output_path)
    except TypeError:
        raw = None
    if not isinstance(raw, str) or not raw.strip():
        raise AkoolValidationError(
            "output_path must be a local path or an ObjectStoragePath URI such as file:///data/out/ or "
            f"s3://bucket/prefix/; got {output_path!r}"
        )
    raw = raw.strip()
    if "://" not in raw:
        raw = os.path.expanduser(raw)
    # ObjectStoragePath drops a trailing slash, so the user's "this is a folder" is read from the text.
    wants_folder = raw.endswith(("/", os.sep))
    target = ObjectStoragePath(raw)
    return target, wants_folder or _is_dir(target)


def _is_dir(path: ObjectStoragePath) -> bool:
    try:
        try:
            return bool(path.is_dir())
        except ValueError:
            # Airflow 3.1's ObjectStoragePath knows only the schemes of installed providers and attach()
            # (3.2+ falls back to fsspec): ask the filesystem that will write the file.
            return bool(_filesystem(path).isdir(path.path))
    except (OSError, NotImplementedError):
        # A store that cannot answer (no list permission on a bucket) is treated as "not a folder": the
        # user can always say "folder" with a trailing slash.
        return False


def _extension(url: str, headers: dict[str, str]) -> str:
    """The file extension of a result: from the URL's path, else from its Content-Type, else ``.bin``."""
    ext = splitext(urlsplit(url).path)[1]
    if _EXTENSION.match(ext):
        return ext.lower()
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    guessed = _PREFERRED_EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type)
    return guessed if guessed and _EXTENSION.match(guessed) else DEFAULT_EXTENSION


def _expected_size(headers: dict[str, str]) -> int | None:
    """The byte count to check, or None when the server gave none that describes the bytes we get."""
    # With a Content-Encoding the length counts the encoded bytes, while the stream yields decoded ones.
    if headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    try:
        size = int(headers.get("content-length", ""))
    except ValueError:
        return None
    return size if size >= 0 else None


def _filesystem(path: ObjectStoragePath) -> AbstractFileSystem:
    """
    The filesystem to write ``path`` with: Airflow's for the scheme and connection, else plain fsspec.

    Airflow knows the schemes of installed providers (``s3`` with the Amazon provider, ...) and those a
    DAG ``attach``-ed. Any other fsspec backend (``memory``, or ``gcsfs`` installed on its own) still
    works through fsspec when no Airflow connection is asked for, as ``ObjectStoragePath`` itself does for
    ``exists`` or ``mkdir``.
    """
    try:
        return path.fs
    except ValueError:
        # Airflow 3.1's ObjectStoragePath has no conn_id attribute; both keep it in storage_options.
        conn_id = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
        if conn_id is not None:
            raise AkoolValidationError(
                f"output_path names the Airflow connection {conn_id!r}, but no installed provider "
                f"serves the {path.protocol!r} scheme: install it, or attach() a filesystem for it"
            ) from None
        options = {key: value for key, value in path.storage_options.items() if key != "conn_id"}
        return fsspec.filesystem(path.protocol, **options)


def _write_atomically(
    final: ObjectStoragePath, fs: AbstractFileSystem | None, chunks: Iterable[bytes], expected: int | None
) -> int:
    """
    Write ``chunks`` to a temporary sibling of ``final``, check the size, then move it to ``final``.

    ``fs`` is None for the local disk, written with the os so the rename is atomic and the file synced.
    """
    parent = final.parent
    if fs is None:
        os.makedirs(parent.path, exist_ok=True)
    else:
        try:
            fs.makedirs(parent.path, exist_ok=True)
        except OSError as error:
            # Object stores have no real folders and some refuse to "create" one; the write below reports
            # any problem that matters.
            log.debug("Could not create %s (%s); writing the file anyway", parent, error)
    # A hidden name with a random part: never taken for a result, and two attempts never share it.
    temporary = parent / f".{final.name}.{uuid.uuid4().hex[:12]}.part"
    try:
        size = _write(temporary.path, chunks, fs)
        if expected is not None and size != expected:
            raise AkoolConnectionError(
                f"the download of the result ended after {size} of {expected} bytes",
                request_sent=True,
                endpoint="download",
            )
        if fs is None:
            # Atomic on one filesystem: readers see the old file or the whole new one, never a part.
            os.replace(temporary.path, final.path)
        else:
            fs.mv(temporary.path, final.path)
    except BaseException:
        _remove_quietly(temporary.path, fs)
        raise
    return size


def _write(path: str, chunks: Iterable[bytes], fs: AbstractFileSystem | None) -> int:
    """Write ``chunks`` to ``path`` (a local file when ``fs`` is None) and return the byte count."""
    size = 0
    if fs is None:
        with open(path, "wb") as local_file:
            for chunk in chunks:
                local_file.write(chunk)
                size += len(chunk)
            # On the disk before the rename, so a crash cannot leave a complete name with missing bytes.
            local_file.flush()
            os.fsync(local_file.fileno())
        return size
    with fs.open(path, "wb") as remote_file:
        for chunk in chunks:
            remote_file.write(chunk)
            size += len(chunk)
    return size


def _remove_quietly(path: str, fs: AbstractFileSystem | None) -> None:
    """Remove a temporary file after a failure, without hiding the failure if that goes wrong too."""
    try:
        if fs is None:
            os.remove(path)
        elif fs.exists(path):
            fs.rm(path)
    except FileNotFoundError:
        pass
    except Exception as error:
        log.warning("Could not remove the partial download %s: %s", path, error)


__all__ = ["keep_result"]
