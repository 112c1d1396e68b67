"""
The webhook receiver's test bench: an emulator that signs callbacks, the receiver's app on a real uvicorn on
127.0.0.1, and a small triggerer in place of ``dag.test()``'s in-line trigger.

``dag.test()`` runs a trigger in line and takes its first event, which would leave no task deferred for a
callback to find, so its in-line step is replaced by :func:`mini_triggerer`, which does what Airflow's
triggerer does: the task instance stays ``deferred`` on its trigger row while the trigger runs; the
trigger's own event goes through ``Trigger.submit_event``; a task that leaves ``deferred`` (resumed by the
receiver's ``Trigger.submit_event``) stops its trigger and, on Airflow 3.3+, calls its ``on_kill`` as the
triggerer does. Used by tests/plugins/test_webhook_receiver.py and tests/kinds/test_kinds.py; the fixtures
(``wh_emulator``, ``receiver_url``, ``setup``) are imported by name where they are used.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import pendulum
import pytest
from packaging.version import Version

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_akool.webhook import callback_url, receiver

CLIENT_ID = "webhook-test-client-0001"
SECRET = "webhook-test-secret-0024"  # 24 characters: an AES-192 key, as Akool's
START = pendulum.datetime(2026, 1, 1, tz="UTC")
AIRFLOW_33 = Version(version("apache-airflow")).release >= (3, 3)


@pytest.fixture(scope="module")
def wh_emulator() -> Iterator[EmulatorServer]:
    """An emulator whose credentials can sign callbacks, with quick jobs."""
    server = EmulatorServer(
        EmulatorConfig(
            api_key=SECRET,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            queued_seconds=0.1,
            processing_seconds=0.3,
        )
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def receiver_url() -> Iterator[str]:
    """The receiver app, mounted at /akool as the API server mounts it, on a real uvicorn on 127.0.0.1."""
    from fastapi import FastAPI

    root = FastAPI()
    root.mount(callback_url.URL_PREFIX, receiver.create_app())
    # log_config=None, as Airflow 3.3's API server runs uvicorn: its loggers propagate, so caplog sees what
    # uvicorn logs (an unhandled exception's traceback among it).
    with serve(root, log_level="warning", log_config=None) as url:
        yield url


@contextmanager
def serve(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` on a real uvicorn on a free 127.0.0.1 port in a thread; yield its URL; stop it after."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def setup(
    wh_emulator: EmulatorServer, receiver_url: str, airflow_db: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorServer]:
    conn = {
        "conn_type": "akool",
        "host": wh_emulator.url,
        "login": CLIENT_ID,
        "password": SECRET,
        "extra": {"auth_type": "api_key"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AKOOL_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", receiver_url)
    monkeypatch.delenv("AIRFLOW__AKOOL__WEBHOOK_BASE_URL", raising=False)
    # The fallback polls every 60 s; 30 s here keeps a failing test shorter and still shows no poll came
    # (on Airflow 3.1 the in-process API of dag.test() holds SQLite's lock for seconds at times, which
    # delays the receiver's writes: a real API server has its own database connections).
    monkeypatch.setattr(callback_url, "WEBHOOK_POLL_INTERVAL", 30.0)
    # No scheduler runs here to be raced (see the settle test): callbacks resume at once.
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RESUME_SETTLE", "0")
    wh_emulator.client.reset()
    yield wh_emulator
    wh_emulator.client.reset()


# --- A small triggerer in place of dag.test()'s in-line trigger ---------------------------------------


@dataclass
class Harness:
    """What the test wants the triggerer to do, and what it saw."""

    hold_before_deferred: float = 0.0
    #: Called after the task asked to defer and before it is ``deferred`` (Airflow's own moment of that).
    before_deferred: Callable[[dict[str, Any]], None] | None = None
    while_deferred: Callable[[dict[str, Any]], None] | None = None
    also_fire_trigger_event: bool = False
    fired_by: list[str] = field(default_factory=list)
    killed: list[bool] = field(default_factory=list)
    #: When the task was deferred (its trigger row's created_date) and when it left ``deferred`` (epoch s).
    deferred_at: list[float] = field(default_factory=list)
    resumed_at: list[float] = field(default_factory=list)


class _AsyncComms:
    """dag.test()'s in-process comms, with the ``asend`` the triggerer's comms have."""

    def __init__(self, comms: Any) -> None:
        self.comms = comms

    def send(self, msg: Any) -> Any:
        return self.comms.send(msg)

    async def asend(self, msg: Any) -> Any:
        from airflow import settings

        try:
            return self.comms.send(msg)
        finally:
            # Airflow 3.1's in-process API leaves this thread's session in a transaction, holding SQLite's
            # lock against the receiver's writes (a real triggerer asks the API server over HTTP).
            settings.Session.remove()


def _by_key(ti: Any) -> Any:
    """The task instance row of ``ti`` by its key (the id column's type differs between versions)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    return select(TaskInstance).where(
        TaskInstance.dag_id == ti.dag_id,
        TaskInstance.run_id == ti.run_id,
        TaskInstance.task_id == ti.task_id,
        TaskInstance.map_index == ti.map_index,
    )


def ti_row(ti: Any) -> tuple[str, Any, Any]:
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(_by_key(ti)).one()
        return str(row.state), row.trigger_id, row.next_kwargs


def _event_payload(next_kwargs: Any) -> Any:
    try:
        from airflow.models.trigger import _decode_next_kwargs  # 3.3: serde-encoded

        return _decode_next_kwargs(next_kwargs)["event"]
    except ImportError:
        return next_kwargs["event"]


def mini_triggerer(harness: Harness) -> Callable[[Any, Any], Any]:
    def run(trigger: Any, task_sdk_ti: Any) -> Any:
        from airflow.models.trigger import Trigger
        from airflow.sdk.execution_time.supervisor import (
            InProcessSupervisorComms,
            InProcessTestSupervisor,
            set_supervisor_comms,
        )
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session

        # dag.test() put the task back to queued for its in-line run; Airflow keeps it deferred.
        time.sleep(harness.hold_before_deferred)
        if harness.before_deferred is not None:
            harness.before_deferred({"ti": task_sdk_ti})
        with create_session() as session:
            row = session.scalars(_by_key(task_sdk_ti)).one()
            assert row.trigger_id is not None, "the deferral left no trigger row"
            row.state = "deferred"
            trigger_id = row.trigger_id
            harness.deferred_at.append(session.get(Trigger, trigger_id).created_date.timestamp())
        supervisor = InProcessTestSupervisor(
            id=task_sdk_ti.id,
            pid=__import__("os").getpid(),
            process=__import__("psutil").Process(),
            process_log=__import__("structlog").get_logger(logger_name="task").bind(),
            client=InProcessTestSupervisor._api_client(),
        )
        supervisor.comms = InProcessSupervisorComms(supervisor=supervisor)
        comms = _AsyncComms(supervisor.comms)
        trigger.task_instance = task_sdk_ti

        async def triggerer() -> Any:
            running = asyncio.ensure_future(anext(trigger.run(), None))
            informed = False
            while True:
                await asyncio.sleep(0.02)
                if running.done():
                    event = running.result()
                    with create_session() as session:
                        Trigger.submit_event(trigger_id, event, session=session)
                    harness.resumed_at.append(time.time())
                    harness.fired_by.append("trigger")
                    return event
                state, _, next_kwargs = ti_row(task_sdk_ti)
                if state == "deferred" and not informed and harness.while_deferred is not None:
                    informed = True
                    await asyncio.to_thread(
                        harness.while_deferred, {"trigger_id": trigger_id, "ti": task_sdk_ti}
                    )
                    continue
                if state != "deferred":
                    harness.resumed_at.append(time.time())
                    running.cancel()
                    harness.fired_by.append("webhook")
                    if AIRFLOW_33:
                        await trigger.on_kill()  # what Airflow 3.3's triggerer does for a stopped trigger
                        harness.killed.append(True)
                    payload = _event_payload(next_kwargs)
                    if harness.also_fire_trigger_event:
                        with create_session() as session:
                            Trigger.submit_event(trigger_id, TriggerEvent(payload), session=session)
                    return TriggerEvent(payload)

        with set_supervisor_comms(comms):
            return asyncio.run(triggerer())

    return run


def released_once_deferred(emulator: EmulatorServer, **options: Any) -> Harness:
    """A harness whose job makes no progress (the emulator's clock stands) until the task is deferred."""
    emulator.client.freeze_clock(True)
    return Harness(while_deferred=lambda info: emulator.client.freeze_clock(False), **options)


def completes_on_callback(
    setup: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    dag_id: str,
    operator: Callable[..., Any],
    polls_before_deferring: int = 0,
    **params: Any,
) -> Any:
    """
    Run one deferred task ``operator(**params)`` with ``webhook_url="airflow"`` through the receiver and the
    mini triggerer; check that it succeeded on Akool's callback, with no poll after the submission but
    ``polls_before_deferring`` (a kind whose submission gives no result URL asks once for it), and return
    the run (:class:`tests.support.dag_runs.RecordedRun`; the task is ``job``).
    """
    import airflow.sdk.definitions.dag as dag_module
    from airflow.sdk import dag

    from tests.support.dag_runs import START, run_recorded

    harness = released_once_deferred(setup)
    monkeypatch.setattr(dag_module, "_run_inline_trigger", mini_triggerer(harness))

    @dag(dag_id=dag_id, schedule=None, start_date=START)
    def one() -> None:
        operator(
            task_id="job",
            webhook_url="airflow",
            deferrable=True,
            poll_interval=0.5,
            timeout=60,
            retries=0,
            **params,
        )

    run = run_recorded(one(), setup.client)
    assert run.states[("job", -1)] == "success", run.failures
    assert harness.fired_by == ["webhook"]
    assert run.value("job")["status"] == "success"
    # The callback, not a poll, finished the wait: no listbyids after the submission but the check before
    # deferring, if the kind makes one.
    assert sum(1 for r in run.ledger["requests"] if r["endpoint"] == "listbyids") == polls_before_deferring
    return run
