"""The receiver's FastAPI app; see :mod:`airflow_provider_akool.plugins.webhook_receiver`."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from airflow_provider_akool.callbacks import CALLBACK_PATH, CallbackRoute
from airflow_provider_akool.plugins.webhook_receiver import (
    NOT_FOUND,
    NOT_JSON,
    REFUSED,
    TOO_LARGE,
    handle_callback,
)
from airflow_provider_akool.webhook import MAX_BODY_BYTES


async def _read_body(request: Request, limit: int) -> bytes | None:
    """Return the body, or None as soon as it passes ``limit`` bytes (whatever Content-Length said)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def create_app() -> FastAPI:
    """Return the receiver's FastAPI app (mounted at ``/akool``)."""
    app = FastAPI(title="Akool webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(CALLBACK_PATH + "/{route}/{token}")
    async def receive(route: str, token: str, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return Response(status_code=NOT_JSON)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return Response(status_code=TOO_LARGE if length.isdigit() else REFUSED)
        body = await _read_body(request, MAX_BODY_BYTES)
        if body is None:
            return Response(status_code=TOO_LARGE)
        try:
            callback_route = CallbackRoute.decode(route)
        except ValueError:
            return Response(status_code=NOT_FOUND)
        # Verifying and the database block: off the API server's event loop.
        status = await run_in_threadpool(handle_callback, callback_route, token, body)
        return Response(status_code=status)

    return app
