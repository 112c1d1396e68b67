"""The operator for Akool background change: a foreground photo composed onto a colour and/or a template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_akool import inputs, protocol
from airflow_provider_akool.kinds.background_change import BACKGROUND_CHANGE
from airflow_provider_akool.operators.base import FROM_FIELD, AkoolJobOperator, WebhookUrl

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.wait import JobSnapshot

#: A size as Akool's ``"WxH"`` or as ``(width, height)``; templated strings are rendered, then checked.
Size = str | Sequence[int]
#: The operator's parameters that the request takes as they are (``build_background_change``'s names).
_REQUEST_PARAMETERS = (
    "origin_img",
    "canvas_size",
    "modify_origin_img_size",
    "overlay_origin_x",
    "overlay_origin_y",
    "color_code",
    "template_url",
    "modify_template_size",
    "overlay_template_x",
    "overlay_template_y",
    "remove_bg",
)


class AkoolBackgroundChangeOperator(AkoolJobOperator):
    """
    Compose a foreground image (a product photo) onto a canvas filled with a colour, a template image, both
    or neither (``POST content/image/bg/replace``), wait for the result and return it.

    .. warning::
        Akool's current documentation marks the background-change endpoint **deprecated**. It is still
        served, and this operator keeps working as the endpoint's documentation describes; it may be
        withdrawn by Akool without notice.

    The four combinations of Akool's documentation all work: ``template_url`` only, ``color_code`` only,
    both (the template drawn over the colour), or neither (a white canvas). The foreground is drawn last.

    Every parameter is checked after template rendering and before any request, and a bad one fails the
    task naming it. A failed job (status 4) fails the task with
    :class:`~airflow_provider_akool.exceptions.AkoolJobFailedError`, whose ``reasons`` are Akool's
    ``error_reasons``. Akool has no way to cancel a background change: on ``timeout`` the task fails saying
    the job could not be cancelled (it may still finish and be billed), and killing the task only stops the
    wait.

    Returns ``{"id": <_id>, "job_id": None, "status", "url": <result image>, "output_path"}``. With
    ``outlets=[Asset(...)]`` the asset event is emitted once the task succeeded, so after the result was
    kept under ``output_path``; its ``extra`` carries ``id``, ``status``, ``url`` and ``output_path``.

    Common parameters (``akool_conn_id``, ``webhook_url``, ``wait_for_completion``, ``deferrable``,
    ``poll_interval``, ``timeout``, ``output_path``) are those of
    :class:`~airflow_provider_akool.operators.base.AkoolJobOperator`.

    :param origin_img: the http(s) URL of the foreground image (a PNG with a transparent background works
        best), or an object-storage URI or ``ObjectStoragePath`` (``s3://aws_default@bucket/key``), signed
        right before the submission for ``input_url_expiry`` seconds.
    :param canvas_size: the size of the result, ``"3840x3840"`` or ``(3840, 3840)``.
    :param modify_origin_img_size: the size the foreground is scaled to, ``"WxH"`` or ``(w, h)``.
    :param overlay_origin_x: where the foreground's top left corner goes on the canvas (may be negative).
    :param overlay_origin_y: likewise, vertically.
    :param color_code: the background colour, ``"#rrggbb"``.
    :param template_url: the http(s) URL of a background image, or an object-storage URI, as ``origin_img``.
    :param modify_template_size: the size the template is scaled to, ``"WxH"`` or ``(w, h)``; only with
        ``template_url``.
    :param overlay_template_x: where the template's top left corner goes on the canvas; only with
        ``template_url``.
    :param overlay_template_y: likewise, vertically; only with ``template_url``.
    :param remove_bg: ask Akool to remove the foreground's own background first (``removeBg``); None leaves
        it out of the request.
    """

    template_fields: Sequence[str] = (*AkoolJobOperator.template_fields, *_REQUEST_PARAMETERS)
    kind = BACKGROUND_CHANGE

    def __init__(
        self,
        *,
        origin_img: str,
        canvas_size: Size,
        modify_origin_img_size: Size,
        overlay_origin_x: int | str,
        overlay_origin_y: int | str,
        color_code: str | None = None,
        template_url: str | None = None,
        modify_template_size: Size | None = None,
        overlay_template_x: int | str | None = None,
        overlay_template_y: int | str | None = None,
        remove_bg: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.origin_img = origin_img
        self.canvas_size = canvas_size
        self.modify_origin_img_size = modify_origin_img_size
        self.overlay_origin_x = overlay_origin_x
        self.overlay_origin_y = overlay_origin_y
        self.color_code = color_code
        self.template_url = template_url
        self.modify_template_size = modify_template_size
        self.overlay_template_x = overlay_template_x
        self.overlay_template_y = overlay_template_y
        self.remove_bg = remove_bg

    def request_params(self, webhook_url: str | None = None) -> dict[str, Any]:
        """Return the keyword arguments of ``submit_background_change``, from the (rendered) attributes."""
        return {**{name: getattr(self, name) for name in _REQUEST_PARAMETERS}, "webhook_url": webhook_url}

    def validate_inputs(self) -> None:
        """Check every parameter after rendering by building the request once, without sending it."""
        # The protocol's own checks, so the operator and the hook can never disagree on what is valid; an
        # object-storage input is checked on its own and stands in as an http(s) URL there.
        params = self.request_params(self.webhook_url)
        self.origin_img = inputs.check_media("origin_img", self.origin_img)
        params["origin_img"] = inputs.stand_in("origin_img", self.origin_img)
        if self.template_url not in (None, ""):
            self.template_url = inputs.check_media("template_url", self.template_url)
            params["template_url"] = inputs.stand_in("template_url", self.template_url)
        protocol.build_background_change(**params)

    def submit(self, hook: AkoolHook, context: Context, webhook_url: WebhookUrl = FROM_FIELD) -> JobSnapshot:
        """Submit ``bg/replace``; the status is the one Akool's reply gave."""
        params = self.request_params(self.webhook_url_of(webhook_url))
        params["origin_img"] = self.signed_input("origin_img", self.origin_img)
        if self.template_url not in (None, ""):
            params["template_url"] = self.signed_input("template_url", self.template_url)
        return self.kind.submit_job(hook, params)

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, submit and wait (see :class:`AkoolJobOperator`); describe the result to outlets."""
        result = super().execute(context)
        describe_outlet_events(context, self.outlets, result)
        return result

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired; describe the result to outlets."""
        result = super().execute_complete(context, event)
        describe_outlet_events(context, self.outlets, result)
        return result


def describe_outlet_events(context: Context, outlets: Sequence[Any], result: dict[str, Any]) -> None:
    """
    Put the result's ``id``, ``status``, ``url`` and ``output_path`` in the ``extra`` of each outlet asset's
    event.

    Airflow emits the events itself when the task succeeds, which is after the result was kept; the extra
    tells a DAG scheduled on the asset which file is new without listing the folder.
    """
    if not outlets:
        return
    outlet_events = context.get("outlet_events")
    if outlet_events is None:
        return
    extra = {key: result.get(key) for key in ("id", "status", "url", "output_path")}
    for outlet in outlets:
        # Aliases and asset references resolve at runtime and carry their own events; only plain assets here.
        if isinstance(outlet, Asset):
            outlet_events[outlet].extra.update(extra)


__all__ = ["AkoolBackgroundChangeOperator"]
