"""
ASGI middleware in front of every endpoint: records the ledger and applies the queued faults.

It works at the ASGI level (not as a FastAPI dependency) because faults must be able to replace, delay or
cut the reply of any route, including streamed downloads.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers

from airflow_provider_akool.emulator.api_common import FAULT_SCOPE_KEY, split_ids
from airflow_provider_akool.emulator.envelope import MESSAGES, OK, TOO_FREQUENT
from airflow_provider_akool.emulator.faults import MAX_OVERSIZED_BYTES
from airflow_provider_akool.emulator.ledger import endpoint_for

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from airflow_provider_akool.emulator.faults import Fault
    from airflow_provider_akool.emulator.state import EmulatorState

DETECT_ENDPOINTS = ("detect", "detect_faces")
# Replies are small; only their start is kept to read the business code for the ledger.
MAX_CAPTURE = 64 * 1024


class DroppedConnection(Exception):
    """Raised to the ASGI server when a ``drop`` fault runs outside uvicorn (no transport to close)."""


class _Recorder:
    """Wraps ``send`` to note the HTTP status and the start of a JSON body."""

    def __init__(self, send: Send) -> None:
        self.send_downstream = send
        self.status = 0
        self.json = False
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        self.observe(message)
        await self.send_downstream(message)

    def observe(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
            self.json = content_type.startswith("application/json")
        elif message["type"] == "http.response.body" and self.json and len(self.body) < MAX_CAPTURE:
            self.body += message.get("body", b"")

    def code(self) -> int | None:
        """``code`` (or detect's ``error_code``) of the reply, ``None`` if it was not such JSON."""
        try:
            body = json.loads(bytes(self.body)) if self.json else None
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        code = body.get("code", body.get("error_code"))
        return code if isinstance(code, int) and not isinstance(code, bool) else None


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, extra: list[Any] | None = None
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def _respond_json(
    send: Send, body: dict[str, Any], status: int = 200, extra: list[Any] | None = None
) -> None:
    await _respond(send, status, json.dumps(body).encode(), "application/json", extra)


async def _swallow(message: Message) -> None:
    """A ``send`` that discards the endpoint's reply (faults with ``after``)."""


def _transport(receive: Receive) -> Any:
    # uvicorn's receive is a bound method of its request cycle, which holds the connection's transport.
    # ASGI has no way to close a connection without replying, so this is how a drop is made real.
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    # Duck-typed: uvloop's transports are not asyncio.Transport subclasses.
    return transport if hasattr(transport, "abort") and hasattr(transport, "get_extra_info") else None


async def _close(receive: Receive, reset: bool) -> None:
    transport = _transport(receive)
    if transport is None:
        raise DroppedConnection("drop fault: no transport to close (not running under uvicorn)")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 makes close() send RST instead of FIN: "connection reset by peer" for the client.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    # Let the server notice the lost connection before the endpoint returns, so it does not try to
    # answer with its own 500 or log a protocol error.
    await asyncio.sleep(0.01)


class EmulatorMiddleware:
    """
    Ledger and faults for every request outside ``/_emulator``.

    :param app: The wrapped ASGI app.
    :param state: The emulator state holding the ledger and the fault queue.
    """

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_for(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        state = self.state
        listed = None
        if endpoint == "listbyids":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            listed = split_ids(",".join(query.get("_ids", [])))
        headers = Headers(scope=scope)
        auth = state.authenticate(headers).kind
        entry = state.ledger.begin(
            scope["method"], scope["path"], endpoint, auth, state.now(), listed, headers.get("user-agent", "")
        )
        recorder = _Recorder(send)
        try:
            fault = state.faults.take(scope["path"], endpoint)
            if fault is None:
                await self.app(scope, receive, recorder.send)
            else:
                await self._faulted(fault, endpoint, scope, receive, recorder)
        finally:
            state.ledger.finish(entry, recorder.code(), recorder.status)

    async def _faulted(
        self, fault: Fault, endpoint: str, scope: Scope, receive: Receive, recorder: _Recorder
    ) -> None:
        kind = fault.kind
        send = recorder.send
        if kind in ("banned", "quota"):
            scope[FAULT_SCOPE_KEY] = kind
            await self.app(scope, receive, send)
        elif kind == "slow":
            await self.app(scope, receive, _Delayed(send, fault.seconds).send)
        elif kind == "drop" and fault.mode == "mid_body":
            await self.app(scope, receive, _Truncating(send, receive).send)
        else:
            if fault.after:
                # The endpoint runs (a submit creates its job), but its reply is lost.
                await self.app(scope, receive, _swallow)
            await self._replace(fault, endpoint, receive, send)

    async def _replace(self, fault: Fault, endpoint: str, receive: Receive, send: Send) -> None:
        detect = endpoint in DETECT_ENDPOINTS
        if fault.kind == "drop":
            await _close(receive, reset=fault.mode == "reset")
        elif fault.kind == "http_500":
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Server Error"
            await _respond(send, fault.status, f"<html>{fault.status} {phrase}</html>".encode(), "text/html")
        elif fault.kind == "not_json":
            page = b"<html><head><title>Akool</title></head><body>Service maintenance</body></html>"
            await _respond(send, 200, page, "text/html; charset=utf-8")
        elif fault.kind == "missing_fields":
            body = {"error_code": 0, "error_msg": "SUCCESS"} if detect else {"code": OK, "msg": "OK"}
            await _respond_json(send, body)
        elif fault.kind == "code_1005":
            message = MESSAGES[TOO_FREQUENT]
            body = (
                {"error_code": TOO_FREQUENT, "error_msg": message}
                if detect
                else {"code": TOO_FREQUENT, "msg": message, "data": None}
            )
            await _respond_json(send, body)
        elif fault.kind == "code":
            message = MESSAGES.get(fault.code, "Error")
            body = (
                {"error_code": fault.code, "error_msg": message}
                if detect
                else {"code": fault.code, "msg": message, "data": None}
            )
            await _respond_json(send, body)
        elif fault.kind == "oversized":
            await _stream_oversized(send, receive, fault.size, fault.length)
        elif fault.kind == "http_429":
            body = {"code": TOO_FREQUENT, "msg": "Too Many Requests", "data": None}
            await _respond_json(send, body, 429, [(b"retry-after", str(fault.retry_after).encode())])
        else:  # pragma: no cover - parse_fault admits no other kind
            raise ValueError(f"unhandled fault kind {fault.kind}")


OVERSIZED_CHUNK = 64 * 1024


async def _stream_oversized(send: Send, receive: Receive, size: int | None, length: bool) -> None:
    """
    Stream a success envelope of ``size`` bytes (``{"code": 1000, ..., "data": {"result": [], "padding"}}``,
    valid JSON), or without end when ``size`` is None; stop as soon as the client goes away.
    """
    head = b'{"code": 1000, "msg": "OK", "data": {"result": [], "padding": "'
    tail = b'"}}'
    headers = [(b"content-type", b"application/json")]
    if length and size is not None:
        headers.append((b"content-length", str(size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    transport = _transport(receive)
    await send({"type": "http.response.body", "body": head, "more_body": True})
    left = None if size is None else max(0, size - len(head) - len(tail))
    sent = 0
    chunk = b"a" * OVERSIZED_CHUNK
    while left is None or left > 0:
        if transport is not None and transport.is_closing():
            return  # the client stopped reading and closed: what a capped client does
        piece = chunk if left is None or left >= OVERSIZED_CHUNK else chunk[:left]
        # uvicorn's send waits while the client does not read (flow control): no busy loop here.
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        sent += len(piece)
        if left is not None:
            left -= len(piece)
        elif sent >= MAX_OVERSIZED_BYTES:
            return  # without end, but not forever: a client that reads everything is stopped here
    await send({"type": "http.response.body", "body": tail})


class _Delayed:
    """Holds back the reply's first message: the endpoint already ran, the client just waits."""

    def __init__(self, send: Send, seconds: float) -> None:
        self.downstream = send
        self.seconds = seconds
        self.waited = False

    async def send(self, message: Message) -> None:
        if not self.waited:
            self.waited = True
            # An async sleep: other requests are served meanwhile.
            await asyncio.sleep(self.seconds)
        await self.downstream(message)


class _Truncating:
    """Passes the real headers and half of the first body chunk, then closes the connection."""

    def __init__(self, send: Send, receive: Receive) -> None:
        self.downstream = send
        self.receive = receive
        self.closed = False

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            partial = body[: len(body) // 2]
            await self.downstream({"type": "http.response.body", "body": partial, "more_body": True})
            self.closed = True
            await _close(self.receive, reset=False)
            return
        await self.downstream(message)
