"""Operators for Akool face reage: detect faces, reage an image or a video, cancel reage jobs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_akool import inputs, masking, validation
from airflow_provider_akool.exceptions import (
    AkoolFaceDetectError,
    AkoolTooManyFacesError,
    AkoolValidationError,
)
from airflow_provider_akool.kinds.reage import REAGE
from airflow_provider_akool.operators.base import FROM_FIELD, AkoolJobOperator, WebhookUrl

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.wait import JobSnapshot


class AkoolDetectFacesOperator(masking.LearnsSecretWhenRendered, BaseOperator):
    """
    Detect the faces of an image and return the ``target_image`` list that reage takes.

    The return value (XCom) is ``[{"path": <image_url>, "opts": "x,y:x,y:x,y:x,y"}, ...]``, one entry per
    face, ready for ``target_image`` of :class:`AkoolImageReageOperator` or :class:`AkoolVideoReageOperator`.
    An image without a face fails the task.

    :param image_url: the http(s) URL of the image, or an object-storage URI or ``ObjectStoragePath``
        (``s3://aws_default@bucket/key``), signed for the request; each face's ``path`` is then that URI
        (never the signed URL), signed again by the reage operator that takes it.
    :param single_face: return only the most prominent face.
    :param akool_conn_id: the ``akool`` connection.
    :param input_url_expiry: how long (seconds, at most 7 days) the URL signed for an object-storage
        ``image_url`` stays valid.
    """

    template_fields: Sequence[str] = ("image_url", "single_face", "akool_conn_id")

    def __init__(
        self,
        *,
        image_url: str,
        single_face: bool | str = True,
        akool_conn_id: str = "akool_default",
        input_url_expiry: float | timedelta = inputs.DEFAULT_INPUT_URL_EXPIRY,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_url = image_url
        self.single_face = single_face
        self.akool_conn_id = akool_conn_id
        self.input_url_expiry = input_url_expiry

    @cached_property
    def hook(self) -> AkoolHook:
        """The hook of this task."""
        from airflow_provider_akool.hooks.akool import AkoolHook

        return AkoolHook(self.akool_conn_id)

    def execute(self, context: Context) -> list[dict[str, str]]:
        """Check the inputs, detect, and return the faces."""
        masking.make_secret_known(self.hook)
        try:
            self.image_url = inputs.check_media("image_url", self.image_url)
            self.single_face = validation.boolean("single_face", self.single_face)
            self.input_url_expiry = inputs.expiry_seconds(self.input_url_expiry)
        except AkoolValidationError as error:
            raise masking.redacted_error(error) from None
        url = inputs.signed_url("image_url", self.image_url, expiry=self.input_url_expiry, logger=self.log)
        target_image = self.hook.detect_faces(url, self.single_face).target_image()
        if not target_image:
            raise AkoolFaceDetectError(f"face detect found no face in {self.image_url}", endpoint="detect")
        if url != self.image_url:
            # The URI, not the signed URL: XCom keeps no signature, and the reage operator signs it anew.
            target_image = [{**face, "path": str(self.image_url)} for face in target_image]
        self.log.info("Found %d face(s) in %s", len(target_image), self.image_url)
        return masking.redact(target_image)


class _AkoolReageOperator(AkoolJobOperator):
    """What image and video reage share: their kind (``listbyids``, ``job/del``, the trigger), the faces."""

    template_fields: Sequence[str] = (*AkoolJobOperator.template_fields, "face_reage", "target_image")
    kind = REAGE
    #: Whether ``target_image=None`` means "detect the faces first" rather than a missing parameter.
    detects_faces = False

    def __init__(
        self,
        *,
        face_reage: int | str,
        target_image: Sequence[Mapping[str, str]] | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.face_reage = face_reage
        self.target_image = target_image

    def validate_inputs(self) -> None:
        """Check ``face_reage`` and ``target_image`` after rendering."""
        self.face_reage = validation.face_reage(self.face_reage)
        if self.target_image is not None or not self.detects_faces:
            self.target_image = validation.target_image(self.target_image, path=inputs.check_media)

    def faces(self, hook: AkoolHook) -> list[dict[str, str]]:
        """Return the faces to reage: ``target_image``, checked by :meth:`validate_inputs`."""
        return [dict(face) for face in self.target_image or ()]

    def submit(self, hook: AkoolHook, context: Context, webhook_url: WebhookUrl = FROM_FIELD) -> JobSnapshot:
        """Submit the reage job; its status is ``queued`` until the first poll says otherwise."""
        faces = [
            {**face, "path": self.signed_input(f"target_image[{index}].path", face["path"])}
            for index, face in enumerate(self.faces(hook))
        ]
        params = {**self.media(), "face_reage": self.face_reage, "target_image": faces}
        return self.kind.submit_job(hook, {**params, "webhook_url": self.webhook_url_of(webhook_url)})


class AkoolImageReageOperator(_AkoolReageOperator):
    """
    Age (positive ``face_reage``) or rejuvenate (negative) the faces of an image.

    Returns ``{"id", "job_id", "status", "url", "output_path"}``. Common parameters (``akool_conn_id``,
    ``webhook_url``, ``wait_for_completion``, ``deferrable``, ``poll_interval``, ``timeout``,
    ``output_path``) are those of :class:`~airflow_provider_akool.operators.base.AkoolJobOperator`.

    :param modify_image: the http(s) URL of the image to change, or an object-storage URI or
        ``ObjectStoragePath`` (``s3://aws_default@bucket/key``), signed right before the submission for
        ``input_url_expiry`` seconds (so are ``target_image`` paths given that way).
    :param face_reage: an integer from -30 to 30 (a templated ``"10"`` is fine).
    :param target_image: the faces to reage, ``[{"path", "opts"}]`` (1 to 8), e.g. the output of
        :class:`AkoolDetectFacesOperator`. None detects the faces of ``modify_image`` first and reages all
        of them.
    """

    template_fields: Sequence[str] = (*_AkoolReageOperator.template_fields, "modify_image")
    media_parameter = "modify_image"
    detects_faces = True

    def __init__(
        self,
        *,
        modify_image: str,
        face_reage: int | str,
        target_image: Sequence[Mapping[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(face_reage=face_reage, target_image=target_image, **kwargs)
        self.modify_image = modify_image

    def faces(self, hook: AkoolHook) -> list[dict[str, str]]:
        """Return ``target_image``, or detect every face of ``modify_image`` when it is None."""
        if self.target_image is not None:
            return super().faces(hook)
        faces = hook.detect_faces(
            self.signed_input("modify_image", self.modify_image), single_face=False
        ).target_image()
        if not faces:
            raise AkoolFaceDetectError(
                f"face detect found no face in modify_image {self.modify_image}: nothing to reage",
                endpoint="detect",
            )
        if len(faces) > validation.MAX_FACES:
            raise AkoolTooManyFacesError(
                f"face detect found {len(faces)} faces in modify_image; reage takes at most "
                f"{validation.MAX_FACES}: pass target_image with the faces to reage",
                endpoint="detect",
            )
        self.log.info("Detected %d face(s) in %s", len(faces), self.modify_image)
        return faces


class AkoolVideoReageOperator(_AkoolReageOperator):
    """
    Age (positive ``face_reage``) or rejuvenate (negative) the faces of a video.

    Returns ``{"id", "job_id", "status", "url", "output_path"}``. Common parameters as for
    :class:`AkoolImageReageOperator`.

    :param modify_video: the http(s) URL of the video to change, or an object-storage URI or
        ``ObjectStoragePath``, signed right before the submission (so are ``target_image`` paths).
    :param face_reage: an integer from -30 to 30 (a templated ``"10"`` is fine).
    :param target_image: the faces to reage, ``[{"path", "opts"}]`` (1 to 8): a still of each person with
        its landmarks, e.g. the output of :class:`AkoolDetectFacesOperator` on a frame of the video.
    """

    template_fields: Sequence[str] = (*_AkoolReageOperator.template_fields, "modify_video")
    media_parameter = "modify_video"

    def __init__(
        self,
        *,
        modify_video: str,
        face_reage: int | str,
        target_image: Sequence[Mapping[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(face_reage=face_reage, target_image=target_image, **kwargs)
        self.modify_video = modify_video


class AkoolCancelReageOperator(masking.LearnsSecretWhenRendered, BaseOperator):
    """
    Cancel reage jobs by ``job_id`` (not ``_id``); finished jobs are left as they are.

    Returns the list of ``job_id`` values sent to Akool.

    :param job_ids: one ``job_id``, a list of them, or an XCom of either; the return dicts of the reage
        operators (``{"job_id": ...}``) are taken too, so ``job_ids=reage.output`` works, mapped or not.
        A string is one id: pass a list (or an XCom of one) for several.
    :param akool_conn_id: the ``akool`` connection.
    """

    template_fields: Sequence[str] = ("job_ids", "akool_conn_id")

    def __init__(
        self,
        *,
        job_ids: str | Iterable[str | Mapping[str, Any]] | Mapping[str, Any],
        akool_conn_id: str = "akool_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_ids = job_ids
        self.akool_conn_id = akool_conn_id

    def execute(self, context: Context) -> list[str]:
        """Check the ids, then cancel them in one request."""
        from airflow_provider_akool.hooks.akool import AkoolHook

        hook = AkoolHook(self.akool_conn_id)
        masking.make_secret_known(hook)
        try:
            job_ids = validation.collect_ids("job_ids", self.job_ids, key="job_id")
        except AkoolValidationError as error:
            raise masking.redacted_error(error) from None
        hook.cancel_reage_jobs(job_ids)
        self.log.info("Cancelled Akool reage job(s) %s", ", ".join(job_ids))
        return masking.redact(job_ids)
