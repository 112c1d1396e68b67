"""The FastAPI application of the emulator."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from airflow_provider_akool.emulator import (
    api_background,
    api_control,
    api_detect,
    api_faceswap,
    api_media,
    api_quota,
    api_reage,
    api_token,
)
from airflow_provider_akool.emulator.config import EmulatorConfig
from airflow_provider_akool.emulator.envelope import ApiError, error_reply
from airflow_provider_akool.emulator.middleware import EmulatorMiddleware
from airflow_provider_akool.emulator.state import EmulatorState
from airflow_provider_akool.emulator.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi.responses import Response

API_PREFIX = "/api/open/v3"
API_V4_PREFIX = "/api/open/v4"


async def _api_error(request: Request, exc: Exception) -> Response:
    # Akool answers business errors with HTTP 200 and the code in the body.
    assert isinstance(exc, ApiError)
    return error_reply(exc)


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """
    Build an emulator app with fresh state.

    :param config: The settings; defaults to :class:`EmulatorConfig` ``()``.
    :return: The app; its state is ``app.state.emulator`` (an :class:`EmulatorState`). Webhook callbacks
        are sent while the ASGI server runs the app's lifespan (uvicorn does by default).
    """
    state = EmulatorState(config or EmulatorConfig())
    # Created with the app rather than in the lifespan, so that what was sent survives a server restart.
    webhooks = WebhookDispatcher(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await webhooks.start()
        try:
            yield
        finally:
            await webhooks.stop()

    # No generated OpenAPI docs: bodies are parsed by hand to reproduce Akool's errors, so a schema
    # would describe nothing useful.
    app = FastAPI(
        title="Akool API emulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.emulator = state
    app.state.webhooks = webhooks
    app.add_exception_handler(ApiError, _api_error)
    for module in (api_token, api_reage, api_faceswap, api_background, api_quota):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(api_faceswap.router_v4, prefix=API_V4_PREFIX)
    for module in (api_detect, api_media, api_control):
        app.include_router(module.router)
    app.add_middleware(EmulatorMiddleware, state=state)
    return app
