"""Emulated jobs: ids in Akool's formats and a status that advances with the emulator clock."""

from __future__ import annotations

import itertools
import os
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

QUEUED, PROCESSING, SUCCESS, FAILED = 1, 2, 3, 4
STATUSES = (QUEUED, PROCESSING, SUCCESS, FAILED)

FAIL_MARKER = "emulator-fail"
STUCK_MARKER = "emulator-stuck"
#: How a job's ``listbyids`` entry can be poisoned: ``status`` (faceswap_status 7), ``id`` (no ``_id``),
#: ``object`` (a string instead of an object), ``types`` (``url`` a number, ``job_id`` a list).
POISON_FORMS = ("status", "id", "object", "types")
# ``emulator-poison-<form>``, optionally ``-stray`` (the entry goes into every listbyids reply).
_POISON_MARKER = re.compile(r"emulator-poison-(status|id|object|types)(-stray)?")

JobKind = Literal["imgreage", "vidreage", "specifyimage", "specifyvideo", "faceswapByImage", "bg_replace"]
#: Kinds polled through ``listbyids`` and cancelled through ``job/del`` (reage and every face swap).
FACESWAP_FAMILY = frozenset({"imgreage", "vidreage", "specifyimage", "specifyvideo", "faceswapByImage"})
#: Kinds whose result is a video.
VIDEO_KINDS = frozenset({"vidreage", "specifyvideo"})


def result_extension(kind: JobKind) -> str:
    """The file extension of a ``kind`` job's result: ``png`` (background change), ``mp4`` or ``jpg``."""
    if kind == "bg_replace":
        return "png"
    return "mp4" if kind in VIDEO_KINDS else "jpg"


#: The finished job's status reply has no result URL (the reage submit reply keeps its own).
NO_URL_MARKER = "emulator-no-url"
#: Every result URL the emulator reports for the job, the submit reply's included, is this one.
JS_URL_MARKER = "emulator-js-url"
JS_URL = "javascript:alert(document.domain)"

# ObjectId layout (4-byte time, 5 random bytes per process, 3-byte counter) so the ids look and sort
# like Akool's MongoDB _id values.
_PROCESS_BYTES = os.urandom(5)
_COUNTER = itertools.count(random.randrange(1 << 24))
_COUNTER_LOCK = threading.Lock()


def new_object_id(now: float) -> str:
    """A 24-hex id like a MongoDB ObjectId, stamped with the emulator clock."""
    with _COUNTER_LOCK:
        count = next(_COUNTER) & 0xFFFFFF
    return (int(now).to_bytes(4, "big") + _PROCESS_BYTES + count.to_bytes(3, "big")).hex()


def new_job_id(now: float) -> str:
    """A reage job id like ``20240102082900592-5653`` (UTC time to the millisecond, dash, four digits)."""
    stamp = datetime.fromtimestamp(now, tz=timezone.utc)
    return f"{stamp:%Y%m%d%H%M%S}{stamp.microsecond // 1000:03d}-{random.randrange(10000):04d}"


def iso_ms(now: float) -> str:
    """ISO-8601 with milliseconds and ``Z``, as in ``createdAt`` (``2023-08-15T02:43:38.536Z``)."""
    stamp = datetime.fromtimestamp(now, tz=timezone.utc)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{stamp.microsecond // 1000:03d}Z"


@dataclass
class Job:
    """
    One submitted job. Its status is computed from the clock, so no background task is needed.

    :param id: The ``_id``.
    :param kind: ``imgreage``, ``vidreage``, ``specifyimage``, ``specifyvideo``, ``faceswapByImage``
        (Face Swap Pro) or ``bg_replace``.
    :param created_at: Emulator time of the submit.
    :param queued_seconds: Time spent queued.
    :param processing_seconds: Time spent processing after the queue.
    :param inputs: Every input URL, searched for the fail and stuck markers.
    :param url: The result URL given at submit.
    :param params: The validated request parameters (needed to render the result).
    :param job_id: The reage or face swap ``job_id``; ``None`` for background change.
    :param webhook_url: Where the webhook sender (``webhooks.py``) POSTs the job's status changes.
    :param cancelled: Set by ``job/del`` when it failed the job.
    :param forced_status: A status pinned by cancel or the control API; it no longer follows the clock.
    :param forced_at: When the status was pinned (the finish time of a pinned 3 or 4).
    :param extra: What rendering and replies need besides ``params`` (sample names, ``image_id``).
    :param poison: How the control API poisoned the job's ``listbyids`` entry (see :data:`POISON_FORMS`),
        and whether the entry goes into every reply (``stray``); None: as the input markers say.
    """

    id: str
    kind: JobKind
    created_at: float
    queued_seconds: float
    processing_seconds: float
    inputs: list[str]
    url: str
    params: dict[str, Any]
    job_id: str | None = None
    webhook_url: str | None = None
    cancelled: bool = False
    forced_status: int | None = None
    forced_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    poison: tuple[str, bool] | None = None

    @property
    def entry_poison(self) -> tuple[str, bool] | None:
        """``(form, stray)`` when the ``listbyids`` entry is poisoned (control API, else an input marker)."""
        if self.poison is not None:
            return self.poison if self.poison[0] else None
        for url in self.inputs:
            match = _POISON_MARKER.search(url)
            if match:
                return match.group(1), bool(match.group(2))
        return None

    @property
    def input_error(self) -> str | None:
        """Why an input the emulator downloaded could not be (see ``inputs.py``), else None."""
        for fetched in self.extra.get("fetched_inputs", ()):
            if fetched.get("error"):
                return str(fetched["error"])
        return None

    @property
    def fails(self) -> bool:
        """True if an input carries the ``emulator-fail`` marker, or could not be downloaded."""
        return any(FAIL_MARKER in url for url in self.inputs) or self.input_error is not None

    @property
    def stuck(self) -> bool:
        """True if an input carries the ``emulator-stuck`` marker (it never leaves processing)."""
        return any(STUCK_MARKER in url for url in self.inputs)

    def reported_url(self, *, submit: bool = False) -> str:
        """The result URL replies give: ``url``, or what the ``emulator-no-url``/``-js-url`` markers say."""
        if any(JS_URL_MARKER in url for url in self.inputs):
            return JS_URL
        if not submit and any(NO_URL_MARKER in url for url in self.inputs):
            return ""
        return self.url

    def status(self, now: float) -> int:
        """The status at emulator time ``now``: 1 queued, 2 processing, 3 success, 4 failed."""
        if self.forced_status is not None:
            return self.forced_status
        elapsed = now - self.created_at
        if elapsed < self.queued_seconds:
            return QUEUED
        if self.stuck or elapsed < self.queued_seconds + self.processing_seconds:
            return PROCESSING
        return FAILED if self.fails else SUCCESS

    def finished_at(self, now: float) -> float | None:
        """When the job reached 3 or 4, or ``None`` while it is still running."""
        if self.status(now) not in (SUCCESS, FAILED):
            return None
        if self.forced_status is not None:
            return self.forced_at
        return self.created_at + self.queued_seconds + self.processing_seconds

    def last_change(self, now: float) -> float:
        """When the status last changed (the ``update_time`` of replies)."""
        if self.forced_status is not None:
            return self.forced_at
        status = self.status(now)
        if status == QUEUED:
            return self.created_at
        if status == PROCESSING:
            return self.created_at + self.queued_seconds
        return self.created_at + self.queued_seconds + self.processing_seconds

    def force(self, status: int, now: float) -> None:
        """Pin the status (control API and cancel); a pinned status never advances."""
        self.forced_status = status
        self.forced_at = now
