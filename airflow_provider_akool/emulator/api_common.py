"""Helpers shared by the endpoint modules: state lookup, JSON bodies, credentials, URLs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from airflow_provider_akool.emulator.envelope import BANNED, QUOTA, ApiError, ParamError
from airflow_provider_akool.emulator.jobs import VIDEO_KINDS, Job, result_extension

if TYPE_CHECKING:
    from fastapi import Request

    from airflow_provider_akool.emulator.jobs import JobKind
    from airflow_provider_akool.emulator.state import Auth, EmulatorState

# Set by the middleware when a queued ``banned`` or ``quota`` fault picked this request; the endpoint then
# answers as if the account were in that state, after the usual credential check.
FAULT_SCOPE_KEY = "akool_emulator.fault"
SAMPLES_PATH = "/media/samples/"

Params = TypeVar("Params")


def get_state(request: Request) -> EmulatorState:
    """The emulator state of the app serving ``request``."""
    state: EmulatorState = request.app.state.emulator
    return state


async def read_json(request: Request) -> Any:
    """The decoded body; an absent body is ``None``, an undecodable one a 1003 naming ``body``."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ParamError("body", "must be valid JSON") from None


def authorize(request: Request, state: EmulatorState) -> Auth:
    """Check credentials (1102, 1101) and then the account (1200), as Akool does for every call."""
    auth = state.authenticate(request.headers)
    if auth.error is not None:
        raise ApiError(auth.error)
    check_banned(request, state)
    return auth


def check_banned(request: Request, state: EmulatorState) -> None:
    """1200 if the account is banned (by state or by a ``banned`` fault)."""
    if state.banned or request.scope.get(FAULT_SCOPE_KEY) == "banned":
        raise ApiError(BANNED)


def authorized(request: Request) -> EmulatorState:
    """The emulator state, once the request's credentials and account passed (see :func:`authorize`)."""
    state = get_state(request)
    authorize(request, state)
    return state


async def admit_submission(
    request: Request, validate: Callable[[Any], Params]
) -> tuple[EmulatorState, Params]:
    """
    What every submission endpoint checks first, in Akool's order: credentials and account, then the body
    (``validate`` turns it into the parameters or raises naming one), then the quota.
    """
    state = authorized(request)
    params = validate(await read_json(request))
    check_quota(request, state)
    return state, params


def charge_new_job(
    request: Request,
    state: EmulatorState,
    *,
    kind: JobKind,
    params: dict[str, Any],
    inputs: list[str],
) -> Job:
    """
    Charge for a job of reage's family (reage or face swap) of ``kind`` and return it, not yet added; call
    under ``state.lock``, so that the charge and the job's creation are one step (1006 when the balance
    cannot pay for it). ``inputs`` are the URLs Akool downloads, the media changed first. A video kind
    processes for ``video_processing_seconds``, an image one for ``processing_seconds``.
    """
    charged = state.charge(kind)
    now = state.now()
    config = state.config
    processing_seconds = config.video_processing_seconds if kind in VIDEO_KINDS else config.processing_seconds
    job = Job(
        id=state.new_object_id(now),
        kind=kind,
        created_at=now,
        queued_seconds=config.queued_seconds,
        processing_seconds=processing_seconds,
        inputs=inputs,
        url="",
        params=params,
        job_id=state.new_job_id(now),
        webhook_url=params["webhookUrl"],
    )
    job.url = f"{base_url(request, state)}/media/results/{job.id}.{result_extension(kind)}"
    job.extra["sample_name"] = sample_name(inputs[0], request, state)
    job.extra["credit"] = charged
    return job


def check_quota(request: Request, state: EmulatorState) -> None:
    """1006 if the quota is exhausted (by state or by a ``quota`` fault)."""
    if state.quota_exhausted or request.scope.get(FAULT_SCOPE_KEY) == "quota":
        raise ApiError(QUOTA)


def base_url(request: Request, state: EmulatorState) -> str:
    """Where result and sample URLs point: the configured public URL, else this request's base URL."""
    return state.config.public_base_url or str(request.base_url).rstrip("/")


def sample_name(url: str | None, request: Request, state: EmulatorState) -> str | None:
    """The sample name if ``url`` is one of this emulator's ``/media/samples/`` URLs, else ``None``."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.path.startswith(SAMPLES_PATH):
        return None
    own_hosts = {urlsplit(base_url(request, state)).netloc, urlsplit(str(request.base_url)).netloc}
    if parts.netloc not in own_hosts:
        return None
    return unquote(parts.path[len(SAMPLES_PATH) :]) or None


def split_ids(value: Any) -> list[str]:
    """A comma-separated list with blanks removed."""
    if not isinstance(value, str):
        return []
    return [item.strip() for item in value.split(",") if item.strip()]
