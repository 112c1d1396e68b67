"""
A kind of Akool job defined outside the provider's package, in one module: the shape of every new kind.

"Echo" sends reage's endpoints (the emulator serves them) under a kind of its own, which Akool cannot
cancel. Everything the provider needs to know about it is here: the request it sends and how the reply
becomes a snapshot (sync and async), how it is polled, its media input, and ``register`` so the one
generic trigger, the webhook receiver, the Akool views and lineage find it by name. Nothing in
``airflow_provider_akool`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_akool import inputs, protocol, validation
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.kinds.base import JobKind, MediaInput, register
from airflow_provider_akool.kinds.reage import afetch_reage, fetch_reage, submitted_reage
from airflow_provider_akool.models import ReageJob
from airflow_provider_akool.operators.base import AkoolJobOperator
from airflow_provider_akool.sensors.base import AkoolJobSensor
from airflow_provider_akool.wait import JobSnapshot


def echo_request(params: Mapping[str, Any]) -> protocol.AkoolRequest[ReageJob]:
    """What to send: reage's ``imgreage`` with the faces given, a fixed ``face_reage``."""
    return protocol.build_image_reage(params["image"], 5, params["faces"], params.get("webhook_url"))


ECHO = register(
    JobKind(
        name="echo",
        fetch=fetch_reage,
        afetch=afetch_reage,
        submitted=submitted_reage,
        request=echo_request,
        inputs=(MediaInput("image", "image"),),
    )
)


class AkoolEchoOperator(AkoolJobOperator):
    """Submit an echo job for ``image`` (its faces detected first) and wait for it, in any mode."""

    template_fields = (*AkoolJobOperator.template_fields, "image")
    kind = ECHO

    def __init__(self, *, image: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image = image

    def validate_inputs(self) -> None:
        self.image = inputs.check_media("image", self.image)

    def submit(self, hook: AkoolHook, context: Any, webhook_url: str | None) -> JobSnapshot:
        image = self.signed_input("image", self.image)
        faces = hook.detect_faces(image).target_image()
        return self.kind.submit_job(hook, {"image": image, "faces": faces, "webhook_url": webhook_url})


class AkoolEchoSensor(AkoolJobSensor):
    """Wait for echo jobs by ``_id``."""

    template_fields = ("ids", "akool_conn_id")
    kind = ECHO

    def __init__(self, *, ids: Sequence[str] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ids = ids

    def ids_to_wait_for(self) -> list[str]:
        return validation.collect_ids("ids", self.ids, key="id")
