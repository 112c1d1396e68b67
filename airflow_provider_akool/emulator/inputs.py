"""
Inputs the emulator downloads, as Akool does: http(s) URLs served on loopback, never anything else.

Akool downloads every input URL of a job (the image or video, each ``targetImage[].path``, ``origin_img``,
``template_url``). The emulator does the same for URLs whose host is a loopback address (a local S3 server
such as moto, a test's own HTTP server), so a test sees whether the URL it gave really serves the object:
the job fails (status 4) when a download fails, the ledger records each input's status, size and SHA-256
(never the URL, which may be signed), and an image reage result is drawn on the downloaded image. Its own
``/media/samples/`` URLs are known without a download; other hosts are never contacted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from airflow_provider_akool.emulator.api_common import base_url
from airflow_provider_akool.emulator.media import CHUNK_SIZE

if TYPE_CHECKING:
    from fastapi import Request

    from airflow_provider_akool.emulator.state import EmulatorState

#: The largest input the emulator downloads; a larger one fails the job as too large.
MAX_INPUT_BYTES = 64 * 1024 * 1024
#: The largest input kept in memory to draw the result on.
MAX_KEPT_BYTES = 16 * 1024 * 1024
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class FetchedInput:
    """
    One downloaded input.

    :param field: The request field (``modifyImage``, ``targetImage[0].path``, ``origin_img``...).
    :param http_status: The status of the download, 0 when no reply came.
    :param sha256: The digest of the bytes, when the download succeeded.
    :param size: How many bytes came.
    :param error: Why the download failed (None when it succeeded).
    :param content: The bytes, when they succeeded and are small enough to keep.
    """

    field: str
    http_status: int
    sha256: str | None
    size: int
    error: str | None
    content: bytes | None = None

    def record(self) -> dict[str, Any]:
        """What the ledger shows: no URL (a signed one grants access) and no bytes."""
        return {
            "field": self.field,
            "http_status": self.http_status,
            "sha256": self.sha256,
            "bytes": self.size,
            "error": self.error,
        }


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` is http(s) on a loopback host (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetchable(url: Any, request: Request, state: EmulatorState) -> bool:
    """Whether the emulator downloads ``url``: on loopback, not one of its own URLs, fetching enabled."""
    if not state.config.fetch_inputs or not isinstance(url, str) or not is_loopback_url(url):
        return False
    own = {urlsplit(base_url(request, state)).netloc, urlsplit(str(request.base_url)).netloc}
    return urlsplit(url).netloc not in own


async def fetch(field: str, url: str) -> FetchedInput:
    """Download ``url`` (streamed, at most :data:`MAX_INPUT_BYTES`); a failure is described, not raised."""
    return await run_in_threadpool(_fetch, field, url)


def _fetch(field: str, url: str) -> FetchedInput:
    # urllib rather than httpx: httpx logs every URL it requests, and a signed input URL must not reach
    # the log of a process that runs the emulator in a thread (the tests), where Akool would never be.
    digest = hashlib.sha256()
    size = 0
    kept: list[bytes] = []
    try:
        with _OPENER.open(urllib.request.Request(url), timeout=TIMEOUT_SECONDS) as response:
            while chunk := response.read(CHUNK_SIZE):
                size += len(chunk)
                if size > MAX_INPUT_BYTES:
                    too_large = f"{field} is larger than {MAX_INPUT_BYTES} bytes"
                    return FetchedInput(field, 200, None, size, too_large)
                digest.update(chunk)
                if size <= MAX_KEPT_BYTES:
                    kept.append(chunk)
    except urllib.error.HTTPError as error:
        return FetchedInput(field, error.code, None, 0, f"HTTP {error.code} downloading {field}")
    except (OSError, ValueError) as error:  # refused, reset, timed out; a URL urllib cannot open
        return FetchedInput(field, 0, None, size, f"could not download {field}: {type(error).__name__}")
    content = b"".join(kept) if size <= MAX_KEPT_BYTES else None
    return FetchedInput(field, 200, digest.hexdigest(), size, None, content)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead off loopback: it fails the download instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxy (the inputs are on loopback) and no redirect.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


async def fetch_inputs(urls: dict[str, Any], request: Request, state: EmulatorState) -> list[FetchedInput]:
    """Download each of ``urls`` (field -> URL) that :func:`fetchable` allows, in order."""
    return [await fetch(field, url) for field, url in urls.items() if fetchable(url, request, state)]


def remember(job_extra: dict[str, Any], fetched: list[FetchedInput], media_field: str) -> None:
    """Keep what the job needs of its downloads: the records, and the media's bytes to draw on."""
    if not fetched:
        return
    job_extra["fetched_inputs"] = [item.record() for item in fetched]
    for item in fetched:
        if item.field == media_field and item.content is not None:
            job_extra["input_bytes"] = item.content
