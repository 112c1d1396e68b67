"""
The submitting kinds the reliability suite runs its cases with: image reage, image face swap, Face Swap Pro.

Each builds its operator on a picture of the emulator (whose markers, ``-emulator-stuck`` and the like, reach
the job) and names the endpoint its submission goes to, so a fault case can aim at "the submission" of any
kind. The kinds differ where the reliability guarantees could: reage detects the picture's faces; image face
swap detects both the picture's and the source portrait's faces before submitting (``specifyimage``); Face
Swap Pro detects nothing and its submission (``faceswapByImage``, v4) gives no result URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_akool.operators.base import AkoolJobOperator
from airflow_provider_akool.operators.faceswap import AkoolFaceSwapProOperator, AkoolImageFaceSwapOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from tests.support.samples import sample

#: What a fault case names as its path to aim at the submission of whichever kind it runs with.
SUBMIT = "<submit>"


@dataclass(frozen=True)
class SubmittingKind:
    """
    :param name: the test id and the task id.
    :param submit_endpoint: the endpoint of its submission, as the emulator's ledger counts it.
    :param detects: face detect requests a submission makes first.
    :param build: ``(emulator, task_id, picture URL, **operator kwargs)`` -> the operator.
    """

    name: str
    submit_endpoint: str
    detects: int
    build: Callable[..., AkoolJobOperator]

    def operator(
        self, emulator: Any, image: str, *, task_id: str | None = None, **kwargs: Any
    ) -> AkoolJobOperator:
        """The kind's operator (task id :attr:`name` unless given) on the emulator's sample ``image``."""
        return self.build(emulator, task_id or self.name, sample(emulator, image), **kwargs)

    def path(self, path: str) -> str:
        """A fault's path: :data:`SUBMIT` becomes this kind's submit endpoint."""
        return self.submit_endpoint if path == SUBMIT else path


def _reage(emulator: Any, task_id: str, image: str, **kwargs: Any) -> AkoolJobOperator:
    return AkoolImageReageOperator(
        task_id=task_id, modify_image=image, face_reage=kwargs.pop("face_reage", 6), **kwargs
    )


def _face_swap(emulator: Any, task_id: str, image: str, **kwargs: Any) -> AkoolJobOperator:
    alice = sample(emulator, "alice.jpg")
    return AkoolImageFaceSwapOperator(task_id=task_id, modify_image=image, source_image=alice, **kwargs)


def _face_swap_pro(emulator: Any, task_id: str, image: str, **kwargs: Any) -> AkoolJobOperator:
    alice = sample(emulator, "alice.jpg")
    return AkoolFaceSwapProOperator(task_id=task_id, modify_image=image, source_image=alice, **kwargs)


REAGE = SubmittingKind("reage", "imgreage", 1, _reage)
FACE_SWAP = SubmittingKind("faceswap", "specifyimage", 2, _face_swap)
FACE_SWAP_PRO = SubmittingKind("faceswap_pro", "faceswapByImage", 0, _face_swap_pro)
KINDS = {kind.name: kind for kind in (REAGE, FACE_SWAP, FACE_SWAP_PRO)}
