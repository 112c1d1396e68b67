"""
Operators for Akool face swap: image (``specifyimage``), video (``specifyvideo``) and Face Swap Pro (v4).

Each puts faces of ``source_image`` in place of faces of the picture or video changed, paired by position
with ``target_image``. Where the pairs can be derived they are: a source given as a picture (a URL, an
object-storage URI, or ``{"path"}`` without ``opts``) is a portrait whose one face face detect finds; an
image's ``target_image`` left out is every face detected in ``modify_image``. Anything else that does not
pair fails before the submission, naming the parameter and the form it takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_akool import inputs, validation
from airflow_provider_akool.exceptions import (
    AkoolFaceDetectError,
    AkoolTooManyFacesError,
    AkoolValidationError,
)
from airflow_provider_akool.kinds.faceswap import (
    FACESWAP,
    FACESWAP_PRO,
    MAX_PRO_PAIRS,
    face_enhance_flag,
)
from airflow_provider_akool.operators.base import FROM_FIELD, AkoolJobOperator, WebhookUrl

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.wait import JobSnapshot

#: The forms ``source_image`` takes, for error messages.
SOURCE_FORMS = (
    'a portrait URL (or object-storage URI) with one face, a list of them, or a list of {"path", "opts"} '
    "faces (pairs with target_image by position)"
)


def check_sources(value: Any, *, most: int) -> list[dict[str, Any]]:
    """
    Return ``source_image`` as a list of ``{"path"}`` (a portrait: its face is detected) or
    ``{"path", "opts"}`` (the face given), 1 to ``most`` of them; raise naming the parameter and its form.
    """
    if isinstance(value, Mapping | str) or inputs.is_object_path(value):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise AkoolValidationError(f"source_image must be {SOURCE_FORMS}; got {value!r}")
    if len(value) > most:
        raise AkoolValidationError(
            f"source_image must be {SOURCE_FORMS}, at most {most}; got {len(value)} faces"
        )
    faces: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"source_image[{index}]"
        if isinstance(item, Mapping):
            if "path" not in item or not set(item) <= {"path", "opts"}:
                raise AkoolValidationError(
                    f'{where} must be a portrait URL or an object with "path" and optional "opts"; '
                    f"got {item!r}"
                )
            face = {"path": inputs.check_media(f"{where}.path", item["path"])}
            if item.get("opts") not in (None, ""):
                face["opts"] = validation.face_opts(f"{where}.opts", item["opts"])
        else:
            face = {"path": inputs.check_media(where, item)}
        faces.append(face)
    return faces


def check_targets(value: Any, *, most: int) -> list[dict[str, Any]]:
    """Return ``target_image``: 1 to ``most`` ``{"path", "opts"}`` faces (a path may be an object URI)."""
    allowed = f'a list of 1 to {most} {{"path", "opts"}} faces (e.g. the output of AkoolDetectFacesOperator)'
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple) or not value or len(value) > most:
        shown = f"{len(value)} faces" if isinstance(value, list | tuple) and value else repr(value)
        raise AkoolValidationError(f"target_image must be {allowed}; got {shown}")
    faces: list[dict[str, Any]] = []
    for index, face in enumerate(value):
        where = f"target_image[{index}]"
        if not isinstance(face, Mapping) or set(face) != {"path", "opts"}:
            raise AkoolValidationError(
                f'{where} must be an object with exactly the keys "path" and "opts"; got {face!r}'
            )
        faces.append(
            {
                "path": inputs.check_media(f"{where}.path", face["path"]),
                "opts": validation.face_opts(f"{where}.opts", face["opts"]),
            }
        )
    return faces


def mismatch(sources: int, targets: int, where: str) -> AkoolValidationError:
    """The error of pairs that do not pair: one source face per target face."""
    return AkoolValidationError(
        f"source_image must have one face per target face (pairs by position): {sources} for {targets} "
        f"{where}; pass source_image as {SOURCE_FORMS}"
    )


class _AkoolFaceSwapOperator(AkoolJobOperator):
    """What the face swap operators share: the source faces (portraits detected), signing, the submit."""

    template_fields: Sequence[str] = (
        *AkoolJobOperator.template_fields,
        "source_image",
        "target_image",
        "face_enhance",
    )
    kind = FACESWAP
    #: Pairs a job takes.
    max_pairs = validation.MAX_FACES

    def __init__(
        self,
        *,
        source_image: Any,
        target_image: Sequence[Mapping[str, str]] | None = None,
        face_enhance: bool | int | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_image = source_image
        self.target_image = target_image
        self.face_enhance = face_enhance

    def validate_inputs(self) -> None:
        """Check ``source_image``, ``target_image`` and ``face_enhance`` after rendering."""
        self.source_image = check_sources(self.source_image, most=self.max_pairs)
        self.face_enhance = face_enhance_flag(self.face_enhance)
        if self.target_image is not None:
            self.target_image = check_targets(self.target_image, most=self.max_pairs)
            if len(self.source_image) != len(self.target_image):
                raise mismatch(len(self.source_image), len(self.target_image), "in target_image")

    def targets(self, hook: AkoolHook) -> list[dict[str, str]]:
        """The target faces, their paths signed: ``target_image`` (checked by :meth:`validate_inputs`)."""
        return [
            {**face, "path": self.signed_input(f"target_image[{index}].path", face["path"])}
            for index, face in enumerate(self.target_image or ())
        ]

    def sources(self, hook: AkoolHook) -> list[dict[str, str]]:
        """The source faces, paths signed; a portrait without ``opts`` gets its one face detected."""
        faces = []
        for index, face in enumerate(self.source_image):
            path = self.signed_input(f"source_image[{index}].path", face["path"])
            if "opts" in face:
                faces.append({"path": path, "opts": face["opts"]})
                continue
            found = hook.detect_faces(path, single_face=True).target_image(path)
            if not found:
                raise AkoolFaceDetectError(
                    f"face detect found no face in source_image[{index}] {face['path']}: a source portrait "
                    "needs one face",
                    endpoint="detect",
                )
            faces.append(found[0])
        return faces

    def detect_targets(self, hook: AkoolHook, name: str, value: Any) -> list[dict[str, str]]:
        """Every face detected in the picture ``name``, at most :attr:`max_pairs`."""
        url = self.signed_input(name, value)
        faces = hook.detect_faces(url, single_face=False).target_image(url)
        if not faces:
            raise AkoolFaceDetectError(
                f"face detect found no face in {name} {value}: nothing to swap", endpoint="detect"
            )
        if len(faces) > self.max_pairs:
            raise AkoolTooManyFacesError(
                f"face detect found {len(faces)} faces in {name}; a face swap takes at most "
                f"{self.max_pairs}: pass target_image with the faces to swap",
                endpoint="detect",
            )
        if len(faces) != len(self.source_image):
            raise mismatch(len(self.source_image), len(faces), f"detected in {name}")
        self.log.info("Detected %d face(s) in %s", len(faces), value)
        return faces

    def submit(self, hook: AkoolHook, context: Context, webhook_url: WebhookUrl = FROM_FIELD) -> JobSnapshot:
        """Pair the faces (detecting where needed), then submit; ``queued`` until the first poll."""
        targets = self.targets(hook)
        params = {
            **self.media(),
            "target_image": targets,
            "source_image": self.sources(hook),
            "face_enhance": self.face_enhance,
        }
        return self.kind.submit_job(hook, {**params, "webhook_url": self.webhook_url_of(webhook_url)})


class AkoolImageFaceSwapOperator(_AkoolFaceSwapOperator):
    """
    Swap faces in an image (``specifyimage``): ``source_image[i]`` replaces ``target_image[i]``.

    Returns ``{"id", "job_id", "status", "url", "output_path"}``. Common parameters (``akool_conn_id``,
    ``webhook_url``, ``wait_for_completion``, ``deferrable``, ``poll_interval``, ``timeout``,
    ``output_path``, ``input_url_expiry``) are those of
    :class:`~airflow_provider_akool.operators.base.AkoolJobOperator`.

    :param modify_image: the http(s) URL of the image to change, or an object-storage URI or
        ``ObjectStoragePath`` (``s3://aws_default@bucket/key``), signed right before the submission (so are
        the paths of ``source_image`` and ``target_image`` given that way).
    :param source_image: the faces put in: a portrait with one face (its face is detected), a list of them,
        or a list of ``{"path", "opts"}`` faces (e.g. the output of
        :class:`~airflow_provider_akool.operators.reage.AkoolDetectFacesOperator`); 1 to 8.
    :param target_image: the faces of ``modify_image`` replaced, ``[{"path", "opts"}]``, one per source
        face. None detects the faces of ``modify_image`` first (their number must be that of the sources).
    :param face_enhance: True for Akool's "HD Optimized" model, False (default) for "Classic"; 0/1 and
        templated ``"true"`` are taken.
    """

    template_fields: Sequence[str] = (*_AkoolFaceSwapOperator.template_fields, "modify_image")
    media_parameter = "modify_image"

    def __init__(
        self,
        *,
        modify_image: str,
        source_image: Any,
        target_image: Sequence[Mapping[str, str]] | None = None,
        face_enhance: bool | int | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            source_image=source_image, target_image=target_image, face_enhance=face_enhance, **kwargs
        )
        self.modify_image = modify_image

    def targets(self, hook: AkoolHook) -> list[dict[str, str]]:
        """``target_image``, or every face detected in ``modify_image`` when it is None."""
        if self.target_image is not None:
            return super().targets(hook)
        return self.detect_targets(hook, "modify_image", self.modify_image)


class AkoolVideoFaceSwapOperator(_AkoolFaceSwapOperator):
    """
    Swap faces in a video (``specifyvideo``): ``source_image[i]`` replaces ``target_image[i]``.

    Returns ``{"id", "job_id", "status", "url", "output_path"}``. Common parameters as for
    :class:`AkoolImageFaceSwapOperator`.

    :param modify_video: the http(s) URL of the video to change, or an object-storage URI or
        ``ObjectStoragePath``, signed right before the submission.
    :param source_image: the faces put in, as for :class:`AkoolImageFaceSwapOperator`.
    :param target_image: the faces of the video replaced, ``[{"path", "opts"}]`` (1 to 8, one per source
        face): a still of each person with its landmarks, e.g. the output of
        :class:`~airflow_provider_akool.operators.reage.AkoolDetectFacesOperator` on a frame of the video.
    :param face_enhance: as for :class:`AkoolImageFaceSwapOperator`.
    """

    template_fields: Sequence[str] = (*_AkoolFaceSwapOperator.template_fields, "modify_video")
    media_parameter = "modify_video"

    def __init__(
        self,
        *,
        modify_video: str,
        source_image: Any,
        target_image: Sequence[Mapping[str, str]],
        face_enhance: bool | int | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            source_image=source_image, target_image=target_image, face_enhance=face_enhance, **kwargs
        )
        self.modify_video = modify_video

    def validate_inputs(self) -> None:
        """Check the faces (``target_image`` is required) after rendering."""
        if self.target_image is None:
            raise AkoolValidationError(
                'target_image must be given for a video: a list of {"path", "opts"} faces (a still of each '
                "person with its landmarks, e.g. AkoolDetectFacesOperator on a frame)"
            )
        super().validate_inputs()


class AkoolFaceSwapProOperator(_AkoolFaceSwapOperator):
    """
    Face Swap Pro (Akool's v4 ``faceswapByImage``): put the face of ``source_image`` on ``modify_image``.

    A single pair needs no landmarks and no face detect: ``source_image`` one portrait, ``modify_image`` the
    picture changed. For several pairs give ``target_image`` (the faces of ``modify_image``, with ``opts``);
    sources given as portraits then get their face detected. Returns ``{"id", "job_id", "status", "url",
    "output_path"}`` (Akool's reply has no URL: it comes with the first poll). Common parameters as for
    :class:`AkoolImageFaceSwapOperator`.

    :param modify_image: the http(s) URL (or object-storage URI) of the picture changed: Akool's
        ``targetImage[].path``.
    :param source_image: the face(s) put in: a portrait, a list of them, or ``{"path", "opts"}`` faces; 1 to
        50.
    :param target_image: for several pairs, the faces of ``modify_image`` replaced, ``[{"path", "opts"}]``,
        one per source face. None: one pair, the picture's face chosen by Akool.
    :param face_enhance: enhance the swapped face (default False).
    :param single_face_mode: Akool's ``single_face_mode`` (None leaves it to Akool).
    """

    template_fields: Sequence[str] = (
        *_AkoolFaceSwapOperator.template_fields,
        "modify_image",
        "single_face_mode",
    )
    kind = FACESWAP_PRO
    media_parameter = "modify_image"
    max_pairs = MAX_PRO_PAIRS

    def __init__(
        self,
        *,
        modify_image: str,
        source_image: Any,
        target_image: Sequence[Mapping[str, str]] | None = None,
        face_enhance: bool | int | str = False,
        single_face_mode: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            source_image=source_image, target_image=target_image, face_enhance=face_enhance, **kwargs
        )
        self.modify_image = modify_image
        self.single_face_mode = single_face_mode

    def validate_inputs(self) -> None:
        """Check the faces and the switches after rendering."""
        if self.single_face_mode is not None:
            self.single_face_mode = validation.boolean("single_face_mode", self.single_face_mode)
        super().validate_inputs()
        if self.target_image is None and len(self.source_image) > 1:
            raise AkoolValidationError(
                f"target_image must be given for {len(self.source_image)} source faces: a list of "
                '{"path", "opts"} faces of modify_image, one per source face (e.g. AkoolDetectFacesOperator '
                "with single_face=False)"
            )

    def targets(self, hook: AkoolHook) -> list[dict[str, str]]:
        """``target_image``, or the one picture without landmarks."""
        if self.target_image is not None:
            return super().targets(hook)
        return [{"path": self.signed_input("modify_image", self.modify_image)}]

    def sources(self, hook: AkoolHook) -> list[dict[str, str]]:
        """A single pair needs no landmarks: no face detect; several pairs get each portrait's face."""
        if self.target_image is None:
            (face,) = self.source_image
            path = self.signed_input("source_image[0].path", face["path"])
            return [{"path": path, **({"opts": face["opts"]} if "opts" in face else {})}]
        return super().sources(hook)

    def media(self) -> dict[str, str]:
        """No ``modifyImage``: the targets' path is the picture changed."""
        return {}

    def submit(self, hook: AkoolHook, context: Context, webhook_url: WebhookUrl = FROM_FIELD) -> JobSnapshot:
        """Submit Face Swap Pro; ``queued``, without a URL, until the first poll."""
        params = {
            "target_image": self.targets(hook),
            "source_image": self.sources(hook),
            "face_enhance": self.face_enhance,
            "single_face_mode": self.single_face_mode,
        }
        return self.kind.submit_job(hook, {**params, "webhook_url": self.webhook_url_of(webhook_url)})


__all__ = ["AkoolFaceSwapProOperator", "AkoolImageFaceSwapOperator", "AkoolVideoFaceSwapOperator"]
