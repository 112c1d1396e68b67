"""
Durable results: copy an Akool result file to a place of the user's choosing before Akool drops it.

Akool keeps results for 7 days. :func:`keep_result` streams one to a local path or to any URI that
Airflow's ``ObjectStoragePath`` takes (``file://``, ``s3://``, ``gs://``, ``memory://``...), through the
user's own fsspec backend and Airflow connection (``s3://aws_default@bucket/prefix/``).

A kept result never replaces a file another task wrote, unless the operator says ``overwrite=True``: on
the local disk the new file is linked onto its name, which fails atomically if the name is taken; on other
fsspec backends the name is checked just before the move (see :func:`keep_result`). What can be known
without writing is checked before the job is submitted (:func:`check_output_path`,
:func:`check_output_free`, :func:`check_mapped_output`), so a bad ``output_path`` costs no job.
"""

from __future__ import annotations

import filecmp
import logging
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from posixpath import splitext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
from airflow.sdk import ObjectStoragePath

from airflow_provider_akool.exceptions import (
    AkoolConnectionError,
    AkoolError,
    AkoolOutputError,
    AkoolOutputExistsError,
    AkoolOutputPathError,
    AkoolResultUnavailableError,
    AkoolValidationError,
)
from airflow_provider_akool.protocol import RESULT_RETENTION_DAYS

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
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
#: What to install for the schemes of Airflow's own providers; any other scheme needs its fsspec package.
_PROVIDER_OF_SCHEME = {
    "s3": "apache-airflow-providers-amazon",
    "s3a": "apache-airflow-providers-amazon",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "az": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
    "wasb": "apache-airflow-providers-microsoft-azure",
}
_ALLOWED = (
    "a local path or an ObjectStoragePath URI such as file:///data/out/ or s3://aws_default@bucket/prefix/ "
    "(ending with / for a folder that receives <akool id>.<ext>)"
)


def keep_result(
    hook: AkoolHook,
    url: str,
    output_path: str | os.PathLike[str] | ObjectStoragePath,
    *,
    akool_id: str,
    overwrite: bool = False,
    kept_until: float | None = None,
) -> str:
    """
    Download the result at ``url`` to ``output_path`` and return where it was kept.

    The file is streamed in chunks (constant memory whatever its size) to a temporary sibling of the final
    name, checked against the ``Content-Length`` the server sent, then moved into place; on any failure
    the temporary is removed, so the final name never holds a partial file.

    Without ``overwrite`` an existing file is never replaced. On the local disk the temporary is hard-linked
    onto the final name, which the kernel refuses atomically when the name exists, so of two tasks keeping
    onto one name at once exactly one wins and the file is whole. An existing file with the very same bytes
    is accepted (a retry keeping its own result again). On other fsspec backends, which have no such
    operation, the name is checked just before the move: two writers finishing within that moment can still
    both pass, and the later one's file wins.

    :param hook: the hook that downloads (``AkoolHook.stream_result``).
    :param url: the result URL Akool gave.
    :param output_path: a local path, an ``ObjectStoragePath`` URI, or an ``ObjectStoragePath``. A folder
        (ends with ``/``, or is an existing directory) receives ``<akool_id>.<ext>``, the extension taken
        from the URL (else from the ``Content-Type``, else ``.bin``); anything else is the full file name.
    :param akool_id: the Akool ``_id`` of the job: the file name in a folder, and named in errors.
    :param overwrite: replace a file that is already there.
    :param kept_until: until when Akool keeps the result (epoch seconds), for error messages; by default
        7 days from now.
    :return: the final location: an absolute path for a local path, else the URI (with its connection id).
    :raises AkoolResultUnavailableError: the file has expired (after 7 days) or was never produced.
    :raises AkoolOutputExistsError: the file is there with other bytes and ``overwrite`` is False.
    :raises AkoolOutputError: writing failed (disk full, permission...); the result is still on Akool.
    """
    if not isinstance(akool_id, str) or not _SAFE_ID.match(akool_id):
        raise AkoolValidationError(f"akool_id must be an Akool id such as a 24-hex _id; got {akool_id!r}")
    target, is_folder = _target(output_path)
    # Resolved before the download, so a store that cannot be written costs no request.
    fs = None if target.protocol in LOCAL_PROTOCOLS else _filesystem(target)
    until = kept_until if kept_until is not None else time.time() + RESULT_RETENTION_DAYS * 24 * 3600
    headers: dict[str, str] = {}
    final = target
    try:
        with hook.stream_result(url, headers=headers) as chunks:
            final = target / f"{akool_id}{_extension(url, headers)}" if is_folder else target
            size = _write_atomically(final, fs, chunks, _expected_size(headers), overwrite=overwrite)
    except AkoolResultUnavailableError as error:
        raise AkoolResultUnavailableError(
            f"the result of Akool job {akool_id} can no longer be downloaded (HTTP {error.http_status}): "
            f"Akool keeps results for {RESULT_RETENTION_DAYS} days only, so a result older than that (or of "
            "a job that produced none) is gone; run the job again to get a new one",
            http_status=error.http_status,
            endpoint=error.endpoint,
        ) from error
    except _NameTaken:
        where = _location(final)
        raise AkoolOutputExistsError(
            f"did not keep the result of Akool job {akool_id}: {where} already exists with other content "
            f"(another task wrote it) and overwrite is False. {_still_on_akool(url, until)} Give each task "
            "its own output_path (a folder ending with / receives <akool id>.<ext>; in a mapped task put "
            "{{ ti.map_index }} in the name), or set overwrite=True to replace the file",
            path=where,
            url=public_url(url),
            expires_at=_iso(until),
        ) from None
    except AkoolError:
        raise
    except Exception as error:
        # Disk full, a permission or a folder changed since the check, a store that refused the write:
        # the job is paid for, so say where its result still is rather than surfacing a bare OSError.
        where = _location(final)
        raise AkoolOutputError(
            f"could not keep the result of Akool job {akool_id} at {where} ({type(error).__name__}: "
            f"{error}). {_still_on_akool(url, until)} Download it from there, or fix output_path and "
            "retry the task (on Airflow 3.3+ a retry keeps this result again without a new job)",
            path=where,
            url=public_url(url),
            expires_at=_iso(until),
        ) from error
    location = _location(final)
    log.info("Kept the result of Akool job %s (%s bytes) at %s", akool_id, size, location)
    return location


def check_output_path(output_path: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """
    Check, without writing anything, that a result can be kept at ``output_path``; return its path.

    Raises :class:`AkoolOutputPathError` naming ``output_path`` and the allowed form when the scheme has no
    installed fsspec backend, when the connection the URI names does not exist, or, on the local disk, when
    the path lies under a regular file or its nearest existing folder cannot be written. Whether an object
    store accepts the write is known only when writing.
    """
    target, is_folder = _target(output_path)
    conn_id = getattr(target, "conn_id", None) or target.storage_options.get("conn_id")
    if conn_id:
        _check_connection(output_path, conn_id)
    if target.protocol not in LOCAL_PROTOCOLS:
        _filesystem(target, output_path)
        return target
    folder = os.path.abspath(target.path if is_folder else target.parent.path)
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise AkoolOutputPathError(
            f"output_path {output_path!r} lies under {existing}, which is a file, not a folder: nothing "
            f"can be written there. output_path must be {_ALLOWED}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AkoolOutputPathError(
            f"output_path {output_path!r} cannot be written: this worker may not create files in {existing} "
            f"(no permission, or a read-only filesystem). output_path must be {_ALLOWED} in a folder the "
            "worker can write"
        )
    return target


def check_output_free(output_path: str | os.PathLike[str] | ObjectStoragePath, *, overwrite: bool) -> None:
    """
    Before a new job is submitted: fail if ``output_path`` names a file that exists and may not be replaced.

    A folder receives ``<akool id>.<ext>``, a name not known yet, so it is never taken.
    """
    if overwrite:
        return
    target, is_folder = _target(output_path)
    if is_folder:
        return
    try:
        if target.protocol in LOCAL_PROTOCOLS:
            taken = os.path.lexists(target.path)
        else:
            taken = bool(_filesystem(target).exists(target.path))
    except (OSError, NotImplementedError) as error:
        # A store that cannot answer now (no list permission): the keep step checks again.
        log.debug("Could not tell whether %s exists (%s); checking again when keeping", target, error)
        return
    if taken:
        where = _location(target)
        raise AkoolOutputExistsError(
            f"output_path {output_path!r}: {where} already exists and overwrite is False, so no job was "
            "submitted (its result could not be kept). Give each run its own name (e.g. with {{ run_id }} "
            "or {{ ds }}), use a folder ending with / (it receives <akool id>.<ext>), or set overwrite=True",
            path=where,
        )


def check_mapped_output(operator: BaseOperator, context: Mapping[str, Any]) -> None:
    """
    Fail before any request when every index of a mapped task would keep its result under one file name.

    ``output_path`` given to ``partial()`` renders the same for every map index unless its template depends
    on the index: this renders it again as another index would (``ti.map_index`` changed) and compares. An
    ``output_path`` given to ``expand()``, a folder, or a task mapped to a single index never fails here.
    """
    ti = context.get("ti")
    map_index = getattr(ti, "map_index", None)
    if ti is None or not isinstance(map_index, int) or map_index < 0:
        return  # not a mapped task instance
    dag = operator.dag if operator.has_dag() else None
    if dag is None:
        return
    mapped = dag.task_dict.get(operator.task_id)
    partial_kwargs = getattr(mapped, "partial_kwargs", None)
    if not isinstance(partial_kwargs, Mapping) or partial_kwargs.get("output_path") is None:
        return  # not mapped, or output_path comes from expand() (or is not set)
    rendered = getattr(operator, "output_path", None)
    if rendered is None or _target(rendered)[1]:
        return  # a folder: each index gets <akool id>.<ext>
    other_index = map_index + 1 if map_index == 0 else map_index - 1
    as_other: Any = {**context, "ti": _AtIndex(ti, other_index), "task_instance": _AtIndex(ti, other_index)}
    try:
        other = operator.render_template(partial_kwargs["output_path"], as_other)
    except Exception as error:
        log.debug(
            "Could not render output_path as map index %s would (%s); not comparing", other_index, error
        )
        return
    if str(other) != str(rendered):
        return
    # Index 0 alone is no collision; when the count is unknown, only the later indexes fail, which is
    # enough: none of them pays for a result that would overwrite index 0's.
    if map_index == 0 and (_map_length(ti) or 1) <= 1:
        return
    raise AkoolOutputPathError(
        f"output_path {rendered!r} is the same file for every map index of this mapped task: their results "
        "would overwrite each other, so nothing was submitted. Put the map index in the name "
        "(output_path='result-{{ ds }}-{{ ti.map_index }}.png'), pass output_path to expand(), or use a "
        "folder ending with / (each result is kept as <akool id>.<ext>)"
    )


def public_url(url: str) -> str:
    """``url`` without any user or password part, to name it in messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<the result URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class _NameTaken(Exception):
    """The final name holds another file and may not be replaced."""


class _AtIndex:
    """A task instance as another map index sees it: the same, but for ``map_index``."""

    def __init__(self, ti: Any, map_index: int) -> None:
        self._ti = ti
        self.map_index = map_index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)


def _map_length(ti: Any) -> int | None:
    """How many indexes the running mapped task has, or None when the worker cannot tell."""
    try:
        count = ti.get_ti_count(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id])
    except Exception as error:  # an SDK without the call, or a supervisor that does not answer it
        log.debug("Could not count the map indexes of %s (%s)", ti.task_id, error)
        return None
    return count if isinstance(count, int) else None


def _still_on_akool(url: str, until: float) -> str:
    return (
        f"The job succeeded and was paid for: its result is still on Akool at {public_url(url)} until about "
        f"{_iso(until)} (Akool keeps results for {RESULT_RETENTION_DAYS} days)."
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _location(path: ObjectStoragePath) -> str:
    # A path without a scheme stays a path (absolute: the worker's working directory means nothing later).
    return os.path.abspath(path.path) if not path.protocol else str(path)


def _check_connection(output_path: object, conn_id: str) -> None:
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise AkoolOutputPathError(
            f"output_path {output_path!r} names the Airflow connection {conn_id!r}, which does not exist: "
            f"create it, or name another (scheme://<conn_id>@bucket/...). output_path must be {_ALLOWED}"
        ) from None


def _target(output_path: str | os.PathLike[str] | ObjectStoragePath) -> tuple[ObjectStoragePath, bool]:
    """Return the path ``output_path`` names and whether it names a folder."""
    if isinstance(output_path, ObjectStoragePath):
        return output_path, _is_dir(output_path)
    try:
        raw = os.fspath(output_path)
    except TypeError:
        raw = None
    if not isinstance(raw, str) or not raw.strip():
        raise AkoolValidationError(f"output_path must be {_ALLOWED}; got {output_path!r}")
    raw = raw.strip()
    if "://" not in raw:
        raw = os.path.expanduser(raw)
    # ObjectStoragePath drops a trailing slash, so the user's "this is a folder" is read from the text.
    wants_folder = raw.endswith(("/", os.sep))
    try:
        target = ObjectStoragePath(raw)
    except ValueError as error:  # Airflow 3.3 refuses a scheme unknown to fsspec when building the path
        raise AkoolOutputPathError(
            f"output_path {output_path!r} cannot be written: {error}. Install the fsspec implementation of "
            f"its scheme, or use {_ALLOWED}"
        ) from None
    return target, wants_folder or _is_dir(target)


def _is_dir(path: ObjectStoragePath) -> bool:
    try:
        try:
            return bool(path.is_dir())
        except ValueError:
            # Airflow 3.1's ObjectStoragePath knows only the schemes of installed providers and attach()
            # (3.2+ falls back to fsspec): ask the filesystem that will write the file.
            return bool(_filesystem(path).isdir(path.path))
    except (OSError, NotImplementedError, ImportError):
        # ImportError: the scheme's fsspec package is missing, which check_output_path reports.
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


def _filesystem(path: ObjectStoragePath, output_path: object = None) -> AbstractFileSystem:
    """
    The filesystem to write ``path`` with: Airflow's for the scheme and connection, else plain fsspec.

    Airflow knows the schemes of installed providers (``s3`` with the Amazon provider, ...) and those a
    DAG ``attach``-ed. Any other fsspec backend (``memory``, or ``gcsfs`` installed on its own) still
    works through fsspec when no Airflow connection is asked for, as ``ObjectStoragePath`` itself does for
    ``exists`` or ``mkdir``.
    """
    shown = repr(output_path) if output_path is not None else repr(str(path))
    try:
        return path.fs
    except (ValueError, ImportError):
        # ValueError: no provider registered the scheme; ImportError: Airflow 3.3 fell back on fsspec,
        # whose implementation of the scheme is not installed.
        pass
    # Airflow 3.1's ObjectStoragePath has no conn_id attribute; both keep it in storage_options.
    conn_id = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
    provider = _PROVIDER_OF_SCHEME.get(path.protocol)
    install = f"install {provider}" if provider else f"install the fsspec implementation of {path.protocol!r}"
    if conn_id is not None:
        raise AkoolOutputPathError(
            f"output_path {shown} names the Airflow connection {conn_id!r}, but no installed provider "
            f"serves the {path.protocol!r} scheme: {install}, or attach() a filesystem for it"
        ) from None
    options = {key: value for key, value in path.storage_options.items() if key != "conn_id"}
    try:
        return fsspec.filesystem(path.protocol, **options)
    except (ImportError, ValueError) as error:
        raise AkoolOutputPathError(
            f"output_path {shown} uses the scheme {path.protocol!r}, which nothing installed serves "
            f"({error}): {install}. output_path must be {_ALLOWED}"
        ) from None


def _write_atomically(
    final: ObjectStoragePath,
    fs: AbstractFileSystem | None,
    chunks: Iterable[bytes],
    expected: int | None,
    *,
    overwrite: bool,
) -> int:
    """
    Write ``chunks`` to a temporary sibling of ``final``, check the size, then move it to ``final``.

    ``fs`` is None for the local disk, written with the os so the move is atomic and the file synced.
    Without ``overwrite``, a ``final`` that holds other bytes raises :class:`_NameTaken`.
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
            _move_local(temporary.path, final.path, overwrite=overwrite)
        else:
            _move_remote(fs, temporary.path, final.path, overwrite=overwrite)
    except BaseException:
        _remove_quietly(temporary.path, fs)
        raise
    return size


def _move_local(temporary: str, final: str, *, overwrite: bool) -> None:
    """Move a complete local file onto its name: atomic, and without ``overwrite`` never replacing one."""
    if overwrite:
        # Readers see the old file or the whole new one, never a part.
        os.replace(temporary, final)
        return
    try:
        # Fails with FileExistsError if the name is taken, in one step: no window between check and move.
        os.link(temporary, final)
    except FileExistsError:
        if not filecmp.cmp(temporary, final, shallow=False):
            raise _NameTaken(final) from None
        log.info("%s already holds these very bytes (kept by an earlier try); keeping it", final)
    except OSError as error:
        # A filesystem without hard links (some FUSE and network mounts): check, then rename, with the
        # race of a check.
        log.debug(
            "Cannot hard-link on the filesystem of %s (%s); checking the name, then renaming", final, error
        )
        if os.path.lexists(final):
            if not filecmp.cmp(temporary, final, shallow=False):
                raise _NameTaken(final) from None
        else:
            os.rename(temporary, final)
            return
    os.remove(temporary)


def _move_remote(fs: AbstractFileSystem, temporary: str, final: str, *, overwrite: bool) -> None:
    """Move a complete file onto its name on an fsspec store; without ``overwrite``, check the name first."""
    if not overwrite and fs.exists(final):
        if not _same_remote(fs, temporary, final):
            raise _NameTaken(final)
        log.info("%s already holds these very bytes (kept by an earlier try); keeping it", final)
        fs.rm(temporary)
        return
    fs.mv(temporary, final)


def _same_remote(fs: AbstractFileSystem, first: str, second: str) -> bool:
    """Whether two files of one store hold the same bytes, read in chunks."""
    if fs.size(first) != fs.size(second):
        return False
    with fs.open(first, "rb") as left, fs.open(second, "rb") as right:
        while True:
            a, b = left.read(1 << 20), right.read(1 << 20)
            if a != b:
                return False
            if not a:
                return True


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


__all__ = ["check_mapped_output", "check_output_free", "check_output_path", "keep_result", "public_url"]
