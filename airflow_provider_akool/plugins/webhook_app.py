"""The receiver's FastAPI app; see :mod:`airflow_provider_akool.plugins.webhook_receiver`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from airflow_provider_akool.callbacks import CALLBACK_PATH, CallbackRoute, redacted_path
from airflow_provider_akool.plugins.webhook_receiver import (
    NOT_FOUND,
    NOT_JSON,
    OK,
    REFUSED,
    TIMED_OUT,
    TOO_LARGE,
    VerifiedCallback,
    act_on_callback,
    body_timeout_seconds,
    verify_callback,
)
from airflow_provider_akool.webhook import MAX_BODY_BYTES

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("airflow_provider_akool.plugins.webhook_receiver")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """Return the body, or None as soon as it passes ``limit`` bytes (whatever Content-Length said)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _read_body_in_time(request: Request) -> bytes | int:
    """Return the body, or the status to answer: too large, too slow, or a client gone mid-body."""
    try:
        # A client that announces a length and sends less would otherwise hold its connection (and this
        # coroutine) for as long as it likes.
        body = await asyncio.wait_for(_read_body(request, MAX_BODY_BYTES), body_timeout_seconds())
    except asyncio.TimeoutError:  # not the builtin TimeoutError on Python 3.10
        log.info("Refused a request to the Akool webhook receiver: its body did not arrive in time")
        return TIMED_OUT
    except ClientDisconnect:
        # Nobody is left to answer; uvicorn drops whatever is sent now.
        return REFUSED
    return TOO_LARGE if body is None else body


class TokenOutOfAccessLogs:
    """
    Put ``REDACTED`` for the token in the path a request reports, before the servers log it.

    Airflow 3.3's ``HttpAccessLogMiddleware`` logs ``scope["path"]`` once the request has ended, and uvicorn's
    own access log (what Airflow 3.1's API server writes) logs it when the answer starts: both read the scope
    this app is given, so the path is rewritten there at the start of the answer (routing is done by then)
    and again when the request ends without one (a client that went away).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_redacted(message: Message) -> None:
            if message["type"] == "http.response.start":
                _redact(scope)
            await send(message)

        try:
            await self.app(scope, receive, send_redacted)
        finally:
            _redact(scope)


def _redact(scope: Scope) -> None:
    scope["path"] = redacted_path(scope["path"])
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        scope["raw_path"] = redacted_path(raw.decode("latin-1")).encode("latin-1")


def create_app() -> FastAPI:
    """Return the receiver's FastAPI app (mounted at ``/akool-webhook``)."""
    app = FastAPI(title="Akool webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TokenOutOfAccessLogs)

    @app.post(CALLBACK_PATH + "/{route}/{token}")
    async def receive(route: str, token: str, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return Response(status_code=NOT_JSON)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return Response(status_code=TOO_LARGE if length.isdigit() else REFUSED)
        body = await _read_body_in_time(request)
        if isinstance(body, int):
            return Response(status_code=body)
        try:
            callback_route = CallbackRoute.decode(route)
        except ValueError:
            return Response(status_code=NOT_FOUND)
        # Verifying and the database block: off the API server's event loop.
        verified = await run_in_threadpool(verify_callback, callback_route, body)
        if isinstance(verified, int):
            return Response(status_code=verified)
        answer = await run_in_threadpool(act_on_callback, callback_route, token, verified)
        if isinstance(answer, int):
            return Response(status_code=answer)
        # The task deferred a moment ago: 200 now (Akool would time out waiting and resend), and resume it
        # once its deferral has settled, after the answer, holding no thread meanwhile. Should the API
        # server stop before then, the trigger's fallback poll finishes the task.
        return Response(
            status_code=OK, background=BackgroundTask(_act_later, callback_route, token, verified, answer)
        )

    return app


async def _act_later(route: CallbackRoute, token: str, verified: VerifiedCallback, wait: float) -> None:
    """Act on a callback after ``wait`` seconds, and again as long as it asks to wait."""
    while True:
        await asyncio.sleep(wait)
        answer = await run_in_threadpool(act_on_callback, route, token, verified)
        if isinstance(answer, int):
            return  # what happened is logged by act_on_callback
        wait = answer
