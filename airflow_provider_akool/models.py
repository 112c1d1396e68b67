"""Small typed values that Akool's replies parse into."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from airflow_provider_akool.deprecation import renamed


class JobStatus(IntEnum):
    """
    The status of an Akool job: ``faceswap_status`` of a reage result, ``image_status`` of an image.

    Akool uses the same four values everywhere: 1 queued, 2 processing, 3 success, 4 failed.
    """

    QUEUED = 1
    PROCESSING = 2
    SUCCESS = 3
    FAILED = 4

    def is_terminal(self) -> bool:
        """Return whether the job will not change any more."""
        return self in (JobStatus.SUCCESS, JobStatus.FAILED)

    @property
    def label(self) -> str:
        """The lower-case name used in XCom and logs: ``queued``, ``processing``, ``success``, ``failed``."""
        return self.name.lower()


@dataclass(frozen=True)
class ReageJob:
    """
    A submitted image or video reage job.

    :param id: Akool's ``_id`` of the result, used to poll ``listbyids``.
    :param url: the address the result will have once the job succeeds.
    :param job_id: the processing job's id, used to cancel it.
    """

    id: str
    url: str | None
    job_id: str | None


@dataclass(frozen=True)
class ReageResult:
    """One entry of ``listbyids``: the state of a reage job."""

    id: str
    status: JobStatus
    url: str | None
    job_id: str | None = None
    created_at: str | None = None


@dataclass(frozen=True)
class BackgroundChangeJob:
    """A submitted background-change job: its ``_id`` (the ``image_model_id`` to poll) and first status."""

    id: str
    status: JobStatus


@dataclass(frozen=True)
class BackgroundChangeResult:
    """
    The state of a background-change job, from ``infobymodelid``.

    :param image_url: the result (``image``), once the job succeeded.
    :param error_reasons: what Akool said went wrong; its shape is not documented, so it is kept as sent.
    """

    id: str
    status: JobStatus
    image_url: str | None = None
    external_img: str | None = None
    error_reasons: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class DetectedFace:
    """
    One face found by face detect.

    :param opts: the ``landmarks_str`` of the face: four ``x,y`` points joined by ``:``, as reage wants it.
    :param region: ``[x, y, w, h]`` of the face, where the service said.
    """

    opts: str
    region: list[int] | None = None


@dataclass(frozen=True)
class DetectedFaces:
    """The faces found in one image."""

    image_url: str | None
    faces: tuple[DetectedFace, ...]

    def target_image(self, path: str | None = None) -> list[dict[str, str]]:
        """
        Return the ``targetImage`` list that reage takes: one ``{"path", "opts"}`` per face.

        :param path: the image the landmarks refer to; by default the detected image, as Akool's demo does.
        """
        image = path or self.image_url
        if not image:
            raise ValueError("target_image needs the path of the image the faces were detected on")
        return [{"path": image, "opts": face.opts} for face in self.faces]


#: Names of before the one vocabulary (issue 21), kept as deprecated aliases.
__getattr__ = renamed(__name__, {"ImageResult": "BackgroundChangeResult"})
