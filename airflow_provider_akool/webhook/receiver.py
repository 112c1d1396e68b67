"""
The API server's side of webhook-first completion: the FastAPI app at ``/akool-webhook/...`` and the resume.

Mounted by the plugin (:mod:`airflow_provider_akool.plugins.webhook_receiver`) only when ``[akool]
webhook_receiver`` is true: off, the plugin adds no endpoint at all and this module is never imported. Plugin
endpoints are not behind Airflow's auth, so a request proves itself before anything changes, in this order:
POST, JSON, at most :data:`~airflow_provider_akool.webhook.signing.MAX_BODY_BYTES` read within
``[akool] webhook_body_timeout`` seconds; a route that names a task instance; a body of Akool's shape (the
four fields, a 40-hex signature, whole AES blocks) before any lookup; then what that task instance expects of
its callbacks (its token's digest and the ``akool`` connection it submitted with, from its deferred trigger's
kwargs or from the mark it left in XCom before submitting): Akool's signature (constant time) and a payload
that decrypts with *that* connection's credentials, never a connection a URL names; then the token against the
digest, and the job id against the trigger's. The token decides on every path: before the deferral (the final
state is left in XCom for the trigger) as after it. A genuine final callback for a deferred task then fires
the event the trigger itself would have fired, through ``Trigger.submit_event`` as the triggerer does, so
``execute_complete`` runs exactly as if the trigger had fired, once.

Answers: 200 to every genuine callback, also repeated, late, non-final, or for a task that no longer waits
(Akool resends until it gets 200); 400 to a forged, tampered or malformed one, 413 to one too large, 415 to
one that is not JSON, 408 to one whose body does not arrive within ``[akool] webhook_body_timeout`` seconds
(nothing to a client that went away mid-body), 404 to a URL that is not a callback route, 503 when the
database cannot be reached or is busy (so Akool sends it again). A genuine callback the receiver cannot act
on for any other reason (trigger kwargs it cannot rebuild, a bug) is logged at error and answered 200: a
resend would fail the same way for as long as Akool resends, nothing changed, and the trigger's fallback
poll still finishes the task. No answer says why: the reason goes to the log.

Age and nonce: not checked. Akool resends a callback until it gets 200, so after an outage a genuine one
may arrive long after its timestamp, and a job's final state never changes: acting on it late is right, and
acting on it twice does nothing (only a task still deferred on that job's trigger is resumed). A replayed
non-final callback changes nothing either.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from airflow_provider_akool.webhook.callback_url import (
    CALLBACK_PATH,
    CALLBACK_XCOM_KEY,
    URL_PREFIX,
    CallbackExpectation,
    CallbackRoute,
    callback_mark,
    resume_settle_seconds,
)
from airflow_provider_akool.webhook.signing import (
    MAX_BODY_BYTES,
    AkoolWebhookEvent,
    AkoolWebhookVerifier,
    callback_shape_problem,
    credentials_problem,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The logger the receiver's refusals and actions go to: the name docs/webhooks.md and docs/security.md give,
#: kept from when the receiver lived in the plugin's module (log configurations may filter on it).
LOGGER_NAME = "airflow_provider_akool.plugins.webhook_receiver"
log = logging.getLogger(LOGGER_NAME)

OK, REFUSED, NOT_FOUND, TIMED_OUT, TOO_LARGE, NOT_JSON, UNAVAILABLE = 200, 400, 404, 408, 413, 415, 503
#: ``[akool] webhook_body_timeout``'s default: seconds a request may take to send its body. Akool's
#: callbacks are a few hundred bytes, sent at once.
DEFAULT_BODY_TIMEOUT = 5.0


def body_timeout_seconds() -> float:
    """``[akool] webhook_body_timeout``: how long a request may take to send its body before a 408."""
    from airflow.providers.common.compat.sdk import conf

    seconds = conf.getfloat("akool", "webhook_body_timeout", fallback=DEFAULT_BODY_TIMEOUT)
    # Not 0 or less: that would refuse every callback (a typo), nor unbounded.
    return seconds if 0 < seconds <= 60 else DEFAULT_BODY_TIMEOUT


@dataclass(frozen=True)
class VerifiedCallback:
    """
    A genuine callback, and the connection that verified it: the task's own.

    :param event: the verified, decrypted callback.
    :param conn_id: the ``akool`` connection the task submitted with, whose credentials verified it.
    """

    event: AkoolWebhookEvent
    conn_id: str


def verify_callback(route: CallbackRoute, body: bytes) -> VerifiedCallback | int:
    """
    Return the callback verified with the task's own connection, or the status to answer (reason logged).

    In this order: the body's shape (no key, no database); what the task expects of its callbacks (its
    token's digest and its connection, from its deferred trigger or its callback mark); that connection,
    an ``akool`` one; the signature and the decryption with its credentials. A connection id in the route
    is never looked up: the sender chose it.
    """
    from airflow.utils.session import create_session

    from airflow_provider_akool.exceptions import AkoolWebhookError

    problem = callback_shape_problem(body)
    if problem is not None:
        log.warning("Refused a request to the Akool webhook receiver: %s", problem)
        return REFUSED
    try:
        with create_session() as session:
            expectation = _expectation(route, session)
    except Exception as error:
        if not _transient(error):
            raise
        log.warning(
            "Could not check an Akool callback now (%s); Akool will send it again", type(error).__name__
        )
        return UNAVAILABLE
    if expectation is None:
        log.warning(
            "Refused an Akool callback for %s: the task instance expects none (no callback URL of its own)",
            route.task_id,
        )
        return REFUSED
    credentials = _credentials(route, expectation.conn_id)
    if credentials is None:
        return REFUSED
    try:
        # No age limit: a final state never changes, and Akool resends until it gets 200 (module docstring).
        event = AkoolWebhookVerifier(*credentials, max_age=None).verify(body)
    except AkoolWebhookError as error:
        log.warning("Refused an Akool callback for %s: %s", route.task_id, error)
        return REFUSED
    return VerifiedCallback(event, expectation.conn_id)


def _credentials(route: CallbackRoute, conn_id: str) -> tuple[str, str] | None:
    """Return the clientId and clientSecret of the task's ``akool`` connection, or None (logged)."""
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except Exception:
        log.warning(
            "Refused an Akool callback for %s: its connection %s cannot be read", route.task_id, conn_id
        )
        return None
    if conn.conn_type != "akool":
        log.warning(
            "Refused an Akool callback for %s: its connection %s is not an akool connection",
            route.task_id,
            conn_id,
        )
        return None
    # str(): Airflow 3.1 types the model's fields as columns. Nothing of the secret is logged, not its length.
    login, password = (str(value) if value else "" for value in (conn.login, conn.password))
    if not login or not password or credentials_problem(login, password) is not None:
        log.warning(
            "Refused an Akool callback for %s: connection %s needs the clientId as login and the "
            "clientSecret (16, 24 or 32 characters) as password to verify callbacks",
            route.task_id,
            conn_id,
        )
        return None
    return login, password


def act_on_callback(route: CallbackRoute, token: str, verified: VerifiedCallback) -> int | float:
    """
    Act on a genuine callback: return the HTTP status to answer, or the seconds to wait before acting.

    A float means the task deferred less than ``[akool] webhook_resume_settle`` seconds ago: nothing was
    changed, call again after that long (the app waits on its event loop, holding no thread).
    """
    event = verified.event
    if not event.is_terminal:
        return OK  # processing: nothing to do, and Akool must stop resending it
    from airflow.utils.session import create_session

    try:
        with create_session() as session:
            wait = _resume(route, token, verified, session)
        if wait is not None:
            return wait
    except Exception as error:
        if _transient(error):
            log.exception(
                "Could not act on the Akool callback of job %s now; Akool will send it again", event.id
            )
            return UNAVAILABLE
        # Genuine, but this receiver cannot act on it (trigger kwargs it cannot rebuild, a bug): sending
        # it again would fail again, for as long as Akool resends. Nothing changed (the transaction rolled
        # back), and the trigger's fallback poll finishes the task. The reason is logged, never the token.
        log.error(
            "Could not act on the genuine Akool callback of job %s (%s) for %s: %s: %s. Answered 200 so "
            "Akool stops resending; the task's trigger finishes it by its fallback poll instead",
            event.id,
            event.status.label,
            route.task_id,
            type(error).__name__,
            error,
        )
    return OK


def _transient(error: Exception) -> bool:
    """Whether ``error`` is the database being unreachable or busy for now (worth Akool's resend)."""
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return isinstance(error, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout))


def _task_instance(route: CallbackRoute, session: Session, *, lock: bool = False) -> Any:
    """The task instance row a route names, or None; ``lock``: for update, where the database can."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    query = select(TaskInstance).where(
        TaskInstance.dag_id == route.dag_id,
        TaskInstance.run_id == route.run_id,
        TaskInstance.task_id == route.task_id,
        TaskInstance.map_index == route.map_index,
    )
    return session.scalars(query.with_for_update() if lock else query).one_or_none()


def _mark(route: CallbackRoute, session: Session) -> Any:
    """The task's callback mark (pending or final), as stored, or None."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    return session.scalar(
        select(XComModel.value).where(
            XComModel.key == CALLBACK_XCOM_KEY,
            XComModel.dag_id == route.dag_id,
            XComModel.run_id == route.run_id,
            XComModel.task_id == route.task_id,
            XComModel.map_index == route.map_index,
        )
    )


def _deferred(ti: Any) -> bool:
    from airflow.utils.state import TaskInstanceState

    return bool(ti.state == TaskInstanceState.DEFERRED and ti.trigger_id is not None)


def _trigger_expectation(trigger: Any) -> CallbackExpectation | None:
    """What a trigger of this provider expects of callbacks, or None if it expects none."""
    digest = getattr(trigger, "webhook_token_sha256", None)
    return CallbackExpectation(digest, trigger.akool_conn_id) if digest else None


def _expectation(route: CallbackRoute, session: Session) -> CallbackExpectation | None:
    """What the task a route names expects of its callbacks: from its deferred trigger, else its mark."""
    from airflow.models.trigger import Trigger

    ti = _task_instance(route, session)
    if ti is None:
        return None
    if _deferred(ti):
        row = session.get(Trigger, ti.trigger_id)
        try:
            trigger = _akool_trigger(row) if row is not None else None
        except Exception:  # kwargs this version cannot rebuild: act_on_callback reports it; the mark agrees
            trigger = None
        expectation = _trigger_expectation(trigger) if trigger is not None else None
        if expectation is not None:
            return expectation
    # Not deferred yet (or deferred by an earlier version): the mark the task left before submitting.
    return CallbackExpectation.of_mark(_mark(route, session))


def _resume(route: CallbackRoute, token: str, verified: VerifiedCallback, session: Session) -> float | None:
    """
    Resume the task deferred on the callback's job, or leave the job's final state for its trigger.

    Only with the task's own token and connection, checked again here, under the task instance's lock.
    Return the seconds to wait when the deferral is too fresh to resume yet (nothing changed), else None.
    """
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import State

    from airflow_provider_akool.wait import JobSnapshot

    event = verified.event
    # Where the database can: the deferral and the triggerer's own event wait for this transaction.
    ti = _task_instance(route, session, lock=True)
    if ti is None or ti.state in State.finished:
        log.info("Akool job %s is %s; its task no longer waits", event.id, event.status.label)
        return None
    snapshot = JobSnapshot(id=event.id, status=event.status, url=event.url)

    def leave_mark(expectation: CallbackExpectation) -> None:
        XComModel.set(
            CALLBACK_XCOM_KEY,
            callback_mark(snapshot, expectation),
            # The route's values, which the row was selected by (Airflow 3.1 types the row's as columns).
            dag_id=route.dag_id,
            run_id=route.run_id,
            task_id=route.task_id,
            map_index=route.map_index,
            session=session,
        )

    def ignored() -> None:
        log.info(
            "Akool job %s: not the callback URL of the waiting try of %s (token or connection); ignored",
            event.id,
            route.task_id,
        )

    if not _deferred(ti):
        # Not deferred yet (the job was quicker than the deferral): the trigger finds this when it starts.
        pending = CallbackExpectation.of_mark(_mark(route, session))
        if pending is None or not pending.accepts(token, verified.conn_id):
            ignored()
            return None
        leave_mark(pending)
        log.info(
            "Akool job %s is %s; left for the trigger of %s", event.id, event.status.label, route.task_id
        )
        return None
    row = session.get(Trigger, ti.trigger_id)
    trigger = _akool_trigger(row) if row is not None else None
    expectation = _trigger_expectation(trigger) if trigger is not None else None
    if (
        row is None
        or trigger is None
        or expectation is None
        or not expectation.accepts(token, verified.conn_id)
    ):
        ignored()
        return None
    fired = trigger.event_for_callback(
        JobSnapshot(id=event.id, status=event.status, url=event.url, job_id=trigger.job_id_of.get(event.id))
    )
    if fired is None:
        log.info("Akool job %s is not the job %s waits for; ignored", event.id, route.task_id)
        return None
    # Not before the deferral has settled. The worker that deferred exits after deferring, and its executor
    # reports that try as "success"; the scheduler fails a task instance it has queued again when that
    # report reaches it afterwards, for the same try ("finished with state success, but the task instance's
    # state attribute is queued": Airflow 3.3.2 forgives this only while the task is still scheduled).
    # A trigger's event comes seconds after the deferral; a callback can come within a second of it, while
    # the worker is still exiting (5 s on a busy machine here), and failed one task in two e2e runs.
    age = (datetime.now(timezone.utc) - row.created_date).total_seconds()
    settle = resume_settle_seconds()
    if age < settle:
        log.info(
            "Akool job %s is %s; resuming %s in %.1f s, once its deferral has settled",
            event.id,
            event.status.label,
            route.task_id,
            settle - age,
        )
        # For a trigger that a restarted triggerer starts meanwhile, and for on_kill: the job is finished.
        leave_mark(expectation)
        return settle - age
    # The mark first: the trigger stopped by this event reads it in on_kill and cancels nothing.
    leave_mark(expectation)
    Trigger.submit_event(ti.trigger_id, TriggerEvent(fired.by_callback().to_payload()), session=session)
    log.info("Akool job %s is %s: resumed %s by its callback", event.id, event.status.label, route.task_id)
    return None


def _akool_trigger(row: Any) -> Any:
    """Rebuild the trigger of a row if it waits for a registered kind of Akool job, else None."""
    from airflow_provider_akool.kinds.base import trigger_class_at

    trigger_class = trigger_class_at(str(row.classpath))
    return None if trigger_class is None else trigger_class(**row.kwargs)


#: What an access log shows for a callback URL's token (a word, which uvicorn's log does not percent-encode).
REDACTED = "REDACTED"


def redacted_path(path: str) -> str:
    """Return ``path`` with a callback URL's token (and what follows) as ``REDACTED``; others as given."""
    head, prefix, rest = path.partition(f"{URL_PREFIX}{CALLBACK_PATH}/")
    route, slash, _ = rest.partition("/")
    return f"{head}{prefix}{route}/{REDACTED}" if prefix and route and slash else path


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
