"""
Webhook-first completion: Akool's callbacks (the emulator's) resume deferred tasks through the receiver.

The receiver is the plugin's real FastAPI app on a real uvicorn on 127.0.0.1; tasks run through
``dag.test()`` on Airflow's real database, with a small triggerer in place of its in-line trigger
(tests/support/webhook_receiver.py, :func:`~tests.support.webhook_receiver.mini_triggerer`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

import httpx
import pytest
from airflow.sdk import dag

from airflow_provider_akool.emulator import EmulatorServer
from airflow_provider_akool.operators.reage import AkoolImageReageOperator
from airflow_provider_akool.plugins import webhook_receiver
from airflow_provider_akool.webhook import MAX_BODY_BYTES, build_callback, callback_url, receiver
from tests.support import webhook_receiver as bench
from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.webhook_receiver import (
    AIRFLOW_33,
    CLIENT_ID,
    SECRET,
    START,
    Harness,
    mini_triggerer,
    released_once_deferred,
    serve,
    ti_row,
)

#: The bench's fixtures, asked for by name: its emulator, the receiver on uvicorn, and both with a connection.
wh_emulator, receiver_url, setup = bench.wh_emulator, bench.receiver_url, bench.setup


def run_webhook_dag(
    emulator: EmulatorServer,
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    *,
    dag_id: str,
    image: str = "portrait.jpg",
    **kwargs: Any,
) -> RecordedRun:
    import airflow.sdk.definitions.dag as dag_module

    monkeypatch.setattr(dag_module, "_run_inline_trigger", mini_triggerer(harness))

    @dag(dag_id=dag_id, schedule=None, start_date=START)
    def one() -> None:
        options: dict[str, Any] = {"poll_interval": 0.5, "timeout": 60, "retries": 0, **kwargs}
        AkoolImageReageOperator(
            task_id="reage",
            modify_image=f"{emulator.url}/media/samples/{image}",
            face_reage=5,
            webhook_url="airflow",
            deferrable=True,
            **options,
        )

    return run_recorded(one(), emulator.client)


def after_submission(ledger: dict[str, Any], endpoint: str) -> int:
    return sum(1 for r in ledger["requests"] if r["endpoint"] == endpoint)


def callback_urls(ledger: dict[str, Any]) -> list[str]:
    return [c["url"] for c in ledger["callbacks"]]


def receiver_base() -> str:
    import os

    return os.environ["AIRFLOW__API__BASE_URL"]


def post(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = kwargs.pop("headers", {"content-type": "application/json"})
    return httpx.post(url, content=content, headers=headers, timeout=10, **kwargs)


# --- The tests ---------------------------------------------------------------------------------------


def test_a_genuine_callback_resumes_the_deferred_task_without_any_status_request(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = released_once_deferred(setup)
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_genuine")
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["webhook"]
    ledger = run.ledger
    # No listbyids at all: not before deferring, not from the trigger (it polls every 60 s now).
    assert after_submission(ledger, "listbyids") == 0
    assert ledger["counts"]["job_del"] == 0  # on_kill of the stopped trigger cancelled nothing
    (akool_id,) = ledger["jobs"]
    value = run.value("reage")
    assert value["id"] == akool_id
    assert value["status"] == "success"
    assert value["url"]
    # The URL Akool got carries the token; the rendered field, logs and XCom keep "airflow".
    urls = callback_urls(ledger)
    assert urls
    assert all(url.startswith(f"{receiver_base()}/akool-webhook/") for url in urls)
    token = urls[0].rsplit("/", 1)[1]
    assert token not in json.dumps(run.rendered("reage"), default=str)
    assert token not in json.dumps(value)


def test_a_callback_right_after_the_deferral_resumes_the_task_only_once_the_deferral_has_settled(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The worker that deferred exits after deferring and its executor reports that try as "success"; the
    scheduler fails a task it has queued again when that report comes later (e2e: "finished with state
    success, but the task instance's state attribute is queued", then "Server indicated the task shouldn't
    be running anymore"). A callback that comes within a second of the deferral must not resume the task
    before ``[akool] webhook_resume_settle`` seconds have passed since it deferred.
    """
    settle = 3.0
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RESUME_SETTLE", str(settle))
    answered: list[float] = []

    def callback_at_once(info: dict[str, Any]) -> None:
        setup.client.freeze_clock(False)  # the job finishes 0.4 s later; the emulator calls back then
        deadline = time.time() + 10
        while time.time() < deadline and not any(
            c["status"] == 3 and c["delivered"] for c in setup.client.ledger()["callbacks"]
        ):
            time.sleep(0.05)
        answered.append(time.time())

    setup.client.freeze_clock(True)
    harness = Harness(while_deferred=callback_at_once)
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_settle")
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["webhook"]
    (deferred_at,) = harness.deferred_at
    (resumed_at,) = harness.resumed_at
    # Resumed by the callback (fired_by above, and no poll below), not before the settle. How soon after
    # it is the e2e suite's and the bench's to measure: a busy machine may delay the resume, not move it
    # before the settle.
    assert resumed_at - deferred_at >= settle, (deferred_at, resumed_at)
    assert answered
    assert after_submission(run.ledger, "listbyids") == 0
    finals = [c for c in run.ledger["callbacks"] if c["status"] == 3]
    assert finals
    if AIRFLOW_33:
        # Akool got its 200 at once (it would time out and resend), long before the resume. Not on 3.1:
        # there dag.test()'s in-process API holds SQLite's lock for seconds at times (see ``setup``),
        # which delays the receiver's first write, not the settle.
        assert answered[0] < resumed_at
        assert all(c["attempts"] == 1 for c in finals), finals


def test_a_callback_for_a_finished_task_and_a_late_resend_are_answered_200_and_change_nothing(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_webhook_dag(setup, Harness(), monkeypatch, dag_id="webhook_late")
    assert run.states[("reage", -1)] == "success"
    (akool_id,) = run.ledger["jobs"]
    url = callback_urls(run.ledger)[-1]
    a_day_ago = int((time.time() - 86400) * 1000)
    late = build_callback(
        CLIENT_ID,
        SECRET,
        {"_id": akool_id, "status": 4, "type": "faceswap", "url": ""},
        timestamp_ms=a_day_ago,
    )
    for _ in range(2):
        assert post(url, late).status_code == 200
    ti = run.tis[("reage", -1)]
    ti.refresh_from_db()
    assert str(ti.state) == "success"
    assert ti.try_number == 1
    assert run.value("reage")["status"] == "success"


def test_a_dropped_callback_falls_back_to_polling(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Akool cannot reach the receiver (nothing listens there): the trigger's relaxed polls finish the task.
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(callback_url, "WEBHOOK_POLL_INTERVAL", 1.0)
    harness = Harness()
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_dropped")
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["trigger"]
    assert not any(c["delivered"] for c in run.ledger["callbacks"])
    assert 1 <= after_submission(run.ledger, "listbyids") <= 3


def test_a_callback_before_the_deferral_is_found_by_the_trigger_without_polling(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job finishes (0.4 s) while the task is not deferred yet: the receiver leaves its final state.
    # The trigger finds it at once, and fires once the deferral has settled (see the settle test).
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RESUME_SETTLE", "3")
    harness = Harness(hold_before_deferred=2.0)
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_early")
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["trigger"]
    # The trigger starts 2 s after the deferral (hold_before_deferred), then waits the 3 s settle.
    assert harness.resumed_at[0] - harness.deferred_at[0] >= 2.0 + 3.0
    assert after_submission(run.ledger, "listbyids") == 0
    assert any(c["status"] == 3 and c["delivered"] for c in run.ledger["callbacks"])


def test_forged_tampered_oversized_and_misdirected_callbacks_are_refused_and_change_nothing(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[str, int] = {}

    def attack(info: dict[str, Any]) -> None:
        ledger = setup.client.ledger()
        ((akool_id, job),) = ledger["jobs"].items()
        url = job["webhook_url"]
        base, token = url.rsplit("/", 1)
        done = {"_id": akool_id, "status": 3, "type": "faceswap", "url": "https://evil.example/x.jpg"}
        genuine = build_callback(CLIENT_ID, SECRET, done)
        answers["forged signature"] = post(url, {**genuine, "signature": "0" * 40}).status_code
        tampered = dict(genuine, dataEncrypt=genuine["dataEncrypt"][:-8] + "AAAAAAA=")
        answers["tampered payload"] = post(url, tampered).status_code
        answers["other credentials"] = post(
            url, build_callback("another-client-id-000001", "another-secret-000000024", done)
        ).status_code
        answers["oversized"] = post(url, b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}").status_code

        def chunks() -> Iterator[bytes]:
            for _ in range(MAX_BODY_BYTES // 1024 + 2):
                yield b" " * 1024

        answers["oversized, no length"] = httpx.post(
            url, content=chunks(), headers={"content-type": "application/json"}, timeout=10
        ).status_code
        answers["not json"] = post(url, genuine, headers={"content-type": "text/plain"}).status_code
        answers["GET"] = httpx.get(url, timeout=10).status_code
        answers["bad route"] = post(f"{base.rsplit('/', 1)[0]}/not-a-route/{token}", genuine).status_code
        answers["wrong token"] = post(f"{base}/{callback_url.new_token()}", genuine).status_code
        other = build_callback(CLIENT_ID, SECRET, {**done, "_id": "0" * 24})
        answers["other job"] = post(url, other).status_code
        answers["processing"] = post(
            url, build_callback(CLIENT_ID, SECRET, {**done, "status": 2})
        ).status_code
        state, trigger_id, _ = ti_row(info["ti"])
        answers["still deferred"] = int(state == "deferred" and trigger_id == info["trigger_id"])
        # And the genuine one: it resumes the task with the job's final state, which it is.
        answers["genuine"] = post(url, genuine).status_code

    harness = Harness(while_deferred=attack)
    run = run_webhook_dag(
        setup, harness, monkeypatch, dag_id="webhook_attacks", image="portrait-emulator-stuck.jpg"
    )
    assert answers == {
        "forged signature": 400,
        "tampered payload": 400,
        "other credentials": 400,
        "oversized": 413,
        "oversized, no length": 413,
        "not json": 415,
        "GET": 405,
        "bad route": 404,
        "wrong token": 200,
        "other job": 200,
        "processing": 200,
        "still deferred": 1,
        "genuine": 200,
    }
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["webhook"]
    assert run.value("reage")["url"] == "https://evil.example/x.jpg"
    assert after_submission(run.ledger, "listbyids") == 0


OTHER_CLIENT_ID = "another-team-client-0001"
OTHER_SECRET = "another-team-secret-0024"


def callback_mark_of(ti: Any) -> Any:
    """The task's callback mark in XCom, as an object."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.key == callback_url.CALLBACK_XCOM_KEY,
                XComModel.dag_id == ti.dag_id,
                XComModel.run_id == ti.run_id,
                XComModel.task_id == ti.task_id,
                XComModel.map_index == ti.map_index,
            )
        )
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def test_only_the_task_s_own_token_and_connection_act_on_a_callback_before_and_after_the_deferral(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Another Akool connection of the same Airflow (another team's account) signs a callback for this task,
    naming its own connection in the route, or the task's; or a genuine callback comes with a token that is
    not the task's. Before the deferral (the mark path) as after it, none may finish the task.
    """
    other = {"conn_type": "akool", "host": setup.url, "login": OTHER_CLIENT_ID, "password": OTHER_SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_AKOOL_OTHER_TEAM", json.dumps(other))
    looked_up = record_connection_lookups(monkeypatch)
    answers: dict[str, Any] = {}
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"

    def attack(phase: str) -> Callable[[dict[str, Any]], None]:
        def run(info: dict[str, Any]) -> None:
            ((akool_id, job),) = setup.client.ledger()["jobs"].items()
            url = job["webhook_url"]
            base, token = url.rsplit("/", 1)
            prefix, route = base.rsplit("/", 1)
            their_route = replace(
                callback_url.CallbackRoute.decode(route), conn_id="akool_other_team"
            ).encode()
            evil = {"_id": akool_id, "status": 3, "type": "faceswap", "url": metadata}
            theirs = build_callback(OTHER_CLIENT_ID, OTHER_SECRET, evil)
            answers[f"{phase}: their connection in the route"] = post(
                f"{prefix}/{their_route}/{token}", theirs
            ).status_code
            answers[f"{phase}: their credentials, the task's route"] = post(url, theirs).status_code
            answers[f"{phase}: genuine, another token"] = post(
                f"{base}/{callback_url.new_token()}", build_callback(CLIENT_ID, SECRET, evil)
            ).status_code
            mark = callback_mark_of(info["ti"])
            answers[f"{phase}: mark"] = sorted(mark) if isinstance(mark, dict) else mark

        return run

    def then_the_genuine_one(info: dict[str, Any]) -> None:
        attack("deferred")(info)
        ((akool_id, job),) = setup.client.ledger()["jobs"].items()
        done = {"_id": akool_id, "status": 3, "type": "faceswap", "url": "https://cdn.example/result.jpg"}
        answers["genuine"] = post(job["webhook_url"], build_callback(CLIENT_ID, SECRET, done)).status_code

    harness = Harness(before_deferred=attack("before"), while_deferred=then_the_genuine_one)
    run = run_webhook_dag(
        setup, harness, monkeypatch, dag_id="webhook_other_team", image="portrait-emulator-stuck.jpg"
    )
    pending = ["conn_id", "token_sha256"]
    assert answers == {
        "before: their connection in the route": 400,
        "before: their credentials, the task's route": 400,
        "before: genuine, another token": 200,
        "before: mark": pending,
        "deferred: their connection in the route": 400,
        "deferred: their credentials, the task's route": 400,
        "deferred: genuine, another token": 200,
        "deferred: mark": pending,
        "genuine": 200,
    }
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["webhook"]
    assert run.value("reage")["url"] == "https://cdn.example/result.jpg"
    # The receiver looked up the task's own connection only (the task itself looks it up too), never theirs.
    assert "akool_other_team" not in looked_up
    assert "akool_default" in looked_up
    # The mark keeps the digest of the token it was checked against, never the token.
    token = next(job["webhook_url"] for job in run.ledger["jobs"].values()).rsplit("/", 1)[1]
    mark = callback_mark_of(run.tis[("reage", -1)])
    assert mark["token_sha256"] == callback_url.token_digest(token)
    assert token not in json.dumps(mark)


def record_connection_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the id of every connection looked up through Airflow's secrets backends from now on."""
    from airflow.models.connection import Connection

    looked_up: list[str] = []
    original = Connection.get_connection_from_secrets.__func__  # type: ignore[attr-defined]

    def recording(cls: Any, conn_id: str, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(conn_id)
        return original(cls, conn_id, *args, **kwargs)

    monkeypatch.setattr(Connection, "get_connection_from_secrets", classmethod(recording))
    return looked_up


def test_a_body_is_checked_before_any_connection_is_looked_up(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A route of the sender's making names a connection that exists, but is not this (unknown) task's.
    route = callback_url.CallbackRoute("no_such_dag", "no_such_run", "no_such_task", -1, "akool_default")
    url = callback_url.callback_url(receiver_base(), route, callback_url.new_token())
    genuine = build_callback(CLIENT_ID, SECRET, {"_id": "a" * 24, "status": 3, "url": ""})
    looked_up = record_connection_lookups(monkeypatch)
    bodies = {
        "no fields": {"signature": "forged"},
        "a signature that is no SHA-1": {**genuine, "signature": "forged"},
        "dataEncrypt not base64": {**genuine, "dataEncrypt": "not base64!"},
        "dataEncrypt not whole blocks": {**genuine, "dataEncrypt": "AAAA"},
        "well formed, for a task that expects no callback": genuine,
    }
    with caplog.at_level(logging.INFO, logger=receiver.LOGGER_NAME):
        answers = {name: post(url, body).status_code for name, body in bodies.items()}
    assert answers == dict.fromkeys(bodies, 400)
    assert looked_up == []
    refusals = [r.getMessage() for r in caplog.records if r.name == receiver.LOGGER_NAME]
    assert any("40 hexadecimal digits" in m for m in refusals), refusals
    assert any("expects none" in m for m in refusals), refusals


@pytest.mark.parametrize(
    ("connection", "why"),
    [
        ({"conn_type": "http", "login": CLIENT_ID, "password": SECRET}, "not an akool connection"),
        ({"conn_type": "akool", "login": CLIENT_ID, "password": SECRET[:-1]}, "needs the clientId"),
        ({"conn_type": "akool", "password": SECRET}, "needs the clientId"),
    ],
    ids=["not akool", "a secret of 23 characters", "no clientId"],
)
def test_a_task_s_connection_that_cannot_verify_is_refused_and_nothing_of_its_secret_logged(
    airflow_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    connection: dict[str, Any],
    why: str,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_TASK_OWN", json.dumps(connection))
    expectation = callback_url.CallbackExpectation(
        callback_url.token_digest(callback_url.new_token()), "task_own"
    )
    monkeypatch.setattr(receiver, "_expectation", lambda route, session: expectation)
    route = callback_url.CallbackRoute("d", "r", "t", -1, "akool_default")
    body = json.dumps(build_callback(CLIENT_ID, SECRET, {"_id": "a" * 24, "status": 3, "url": ""})).encode()
    with caplog.at_level(logging.DEBUG):
        assert receiver.verify_callback(route, body) == receiver.REFUSED
    messages = [r.getMessage() for r in caplog.records if r.name == receiver.LOGGER_NAME]
    assert any(why in m and "task_own" in m for m in messages), messages
    logged = " ".join(caplog.messages)
    # Neither the secret nor its length (the verifier's own message names it: "this one has 23").
    assert connection["password"] not in logged
    assert "this one has" not in logged
    assert f"has {len(connection['password'])}" not in logged


def test_a_trigger_ignores_a_mark_left_for_another_token() -> None:
    digest = callback_url.token_digest(callback_url.new_token())
    other = callback_url.CallbackExpectation(
        callback_url.token_digest(callback_url.new_token()), "akool_default"
    )
    mine = callback_url.CallbackExpectation(digest, "akool_default")
    from airflow_provider_akool.models import JobStatus
    from airflow_provider_akool.wait import JobSnapshot

    done = JobSnapshot(id="a" * 24, status=JobStatus.SUCCESS, url="https://cdn.example/r.jpg")
    job_id_of = {"a" * 24: None}
    assert callback_url.snapshot_of_mark(callback_url.callback_mark(done, other), job_id_of, digest) is None
    unsigned = {"id": "a" * 24, "status": "success", "url": ""}  # a mark of an earlier version
    assert callback_url.snapshot_of_mark(unsigned, job_id_of, digest) is None
    found = callback_url.snapshot_of_mark(
        json.dumps(callback_url.callback_mark(done, mine)), job_id_of, digest
    )
    assert found is not None
    assert found.url == "https://cdn.example/r.jpg"


def test_the_trigger_s_own_event_racing_the_webhook_s_resumes_the_task_once(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = AkoolImageReageOperator.execute_complete

    def counting(self: Any, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["status"])
        return original(self, context, event)

    monkeypatch.setattr(AkoolImageReageOperator, "execute_complete", counting)
    harness = released_once_deferred(setup, also_fire_trigger_event=True)
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_race")
    assert run.states[("reage", -1)] == "success", run.failures
    assert calls == ["success"]
    ti = run.tis[("reage", -1)]
    ti.refresh_from_db()
    assert ti.try_number == 1
    assert ti.next_method is None


def test_a_genuine_callback_the_receiver_cannot_act_on_is_logged_answered_200_and_left_to_the_poll(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A 5xx would make Akool resend for as long as it resends, failing the same way each time.
    monkeypatch.setattr(callback_url, "WEBHOOK_POLL_INTERVAL", 1.0)
    answers: list[int] = []
    tokens: list[str] = []

    def break_the_trigger_row(info: dict[str, Any]) -> None:
        from airflow.models.trigger import Trigger
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.get(Trigger, info["trigger_id"])
            # Kwargs this version cannot rebuild its trigger from (as after a downgrade).
            row.kwargs = {**row.kwargs, "option_of_a_later_version": True}
        setup.client.freeze_clock(False)
        ledger = setup.client.ledger()
        ((akool_id, job),) = ledger["jobs"].items()
        tokens.append(job["webhook_url"].rsplit("/", 1)[1])
        done = {"_id": akool_id, "status": 3, "type": "faceswap", "url": ""}
        with caplog.at_level("ERROR", logger=receiver.LOGGER_NAME):
            answers.append(post(job["webhook_url"], build_callback(CLIENT_ID, SECRET, done)).status_code)

    setup.client.freeze_clock(True)
    harness = Harness(while_deferred=break_the_trigger_row)
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_unusable")
    assert answers == [200]
    errors = [r.getMessage() for r in caplog.records if r.name == receiver.LOGGER_NAME]
    assert any("option_of_a_later_version" in m and "fallback poll" in m for m in errors), errors
    assert not any(tokens[0] in m for m in caplog.messages)
    # Nothing changed by the callback: the trigger's own poll finished the task.
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["trigger"]
    assert after_submission(run.ledger, "listbyids") >= 1


@pytest.mark.skipif(not AIRFLOW_33, reason="trigger on_kill exists from Airflow 3.3")
def test_a_task_resumed_by_its_callback_never_has_its_finished_job_cancelled(
    setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = released_once_deferred(setup)
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_kill")
    assert harness.killed == [True]
    assert run.ledger["counts"]["job_del"] == 0


# --- The edges: what a request that is not a callback costs ------------------------------------------


def raw_exchange(base_url: str, head: str, body: bytes, *, close: bool = False, wait: float = 10.0) -> bytes:
    """Send a request head and (part of) a body on a raw socket; return what the server answered."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head.encode("ascii") + body)
        if close:
            return b""
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            pass
        return answer


def callback_head(path: str, length: int) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )


@pytest.fixture
def server_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """caplog, seeing uvicorn's error and access logs even after Airflow's logging stops their propagation."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "handlers", [*logger.handlers, caplog.handler])
        monkeypatch.setattr(logger, "propagate", False)  # seen once, through the handler above
        monkeypatch.setattr(logger, "level", logging.INFO)
    return caplog


def unhandled(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What was logged with a traceback, or at error level, by the server or the receiver."""
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def a_route_path(route: str | None = None) -> str:
    if route is None:
        route = callback_url.CallbackRoute("d", "r", "t", -1, "akool_default").encode()
    return f"{callback_url.URL_PREFIX}/{route}/{callback_url.new_token()}"


def test_a_route_that_decodes_to_deeply_nested_json_is_404_without_a_traceback(
    receiver_url: str, server_logs: pytest.LogCaptureFixture
) -> None:
    caplog = server_logs
    # Within the route's length limit, but deeper than the JSON parser recurses: RecursionError (a 500).
    nested = base64.urlsafe_b64encode(b"[" * 1500).decode("ascii").rstrip("=")
    assert len(nested) <= callback_url.MAX_ROUTE_CHARS
    genuine_shape = build_callback(CLIENT_ID, SECRET, {"_id": "0" * 24, "status": 3, "url": ""})
    with caplog.at_level(logging.INFO):
        answer = post(f"{receiver_url}{a_route_path(nested)}", genuine_shape)
    assert answer.status_code == 404
    assert unhandled(caplog) == []


def test_a_client_that_goes_away_mid_body_leaves_no_traceback(
    receiver_url: str, server_logs: pytest.LogCaptureFixture
) -> None:
    caplog = server_logs
    with caplog.at_level(logging.INFO):
        raw_exchange(receiver_url, callback_head(a_route_path(), 100), b'{"signature"', close=True)
        time.sleep(1.0)  # the server notices the disconnect and ends the request
    assert unhandled(caplog) == []


def test_a_body_that_stops_coming_is_answered_408_within_the_configured_seconds(
    receiver_url: str, monkeypatch: pytest.MonkeyPatch, server_logs: pytest.LogCaptureFixture
) -> None:
    caplog = server_logs
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_BODY_TIMEOUT", "1")
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        answer = raw_exchange(receiver_url, callback_head(a_route_path(), 100), b"{", wait=60.0)
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    # Not before the configured second, and the server's answer, not the client giving up (at 60 s); how
    # much after the second is the machine's business (no upper bound a busy machine could break).
    assert 1.0 <= took < 30.0, took
    assert unhandled(caplog) == []


def test_the_body_timeout_is_a_few_seconds_by_default() -> None:
    assert 1.0 <= receiver.body_timeout_seconds() <= 10.0


# --- The token stays out of the access log ----------------------------------------------------------


@pytest.fixture(scope="module")
def api_server_like() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """
    The receiver mounted as Airflow's API server mounts it, inside the middlewares it puts around every
    plugin app, on uvicorn with its own access log on (as Airflow 3.1's ``api-server`` runs it); yields the
    URL and the records of Airflow 3.3's access log middleware (a structlog logger of its own).
    """
    from airflow.api_fastapi.auth.middlewares.refresh_token import JWTRefreshMiddleware
    from fastapi import FastAPI
    from starlette.middleware.gzip import GZipMiddleware

    root = FastAPI()
    root.mount(callback_url.URL_PREFIX, receiver.create_app())
    # The order of airflow.api_fastapi.app.create_app: plugins, then init_middlewares, then access logging.
    root.add_middleware(JWTRefreshMiddleware)
    root.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    access: list[dict[str, Any]] = []
    patch = pytest.MonkeyPatch()
    try:
        from airflow.api_fastapi.common import http_access_log  # Airflow 3.3
    except ImportError:
        pass
    else:

        class Recorder:
            def info(self, event: str, **fields: Any) -> None:
                access.append({"event": event, **fields})

        patch.setattr(http_access_log, "logger", Recorder())
        root.add_middleware(http_access_log.HttpAccessLogMiddleware)
    try:
        with serve(root, access_log=True, log_config=None) as url:
            yield url, access
    finally:
        patch.undo()


def test_the_callback_token_is_in_no_access_log_line(
    api_server_like: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    server_logs: pytest.LogCaptureFixture,
) -> None:
    caplog = server_logs
    base, access = api_server_like
    access.clear()
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_BODY_TIMEOUT", "1")
    route = callback_url.CallbackRoute("a_dag", "a_run", "a_task", -1, "akool_default")
    tokens = [callback_url.new_token() for _ in range(5)]
    urls = [callback_url.callback_url(base, route, token) for token in tokens]
    shaped = build_callback(CLIENT_ID, SECRET, {"_id": "a" * 24, "status": 3, "url": ""})
    with caplog.at_level(logging.INFO):
        answers = [
            post(urls[0], {"signature": "forged"}).status_code,
            httpx.get(urls[1], timeout=10).status_code,
            post(urls[2], shaped, headers={"content-type": "text/plain"}).status_code,
        ]
        path = urls[3].removeprefix(base)
        answer = raw_exchange(base, callback_head(path, 100), b"{", wait=10.0)
        answers.append(int(answer.split(b" ", 2)[1]) if answer else 0)
        raw_exchange(base, callback_head(urls[4].removeprefix(base), 100), b"{", close=True)
        time.sleep(1.5)  # the gone client's request ends, and is logged
    assert answers == [400, 405, 415, 408]
    logged = [r.getMessage() for r in caplog.records] + [json.dumps(r, default=str) for r in access]
    assert not [line for line in logged for token in tokens if token in line]
    # What the access logs say instead: the route, and REDACTED for the token.
    redacted = f"{callback_url.URL_PREFIX}/{route.encode()}/REDACTED"
    uvicorn_lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert sum(redacted in line for line in uvicorn_lines) >= 4, uvicorn_lines
    if access:  # Airflow 3.3's own access log
        assert sum(r["path"] == redacted for r in access) == 5, access


def test_only_a_callback_path_s_token_is_redacted() -> None:
    route = callback_url.CallbackRoute("d", "r", "t", -1, "c").encode()
    token = callback_url.new_token()
    redacted = f"/akool-webhook/{route}/REDACTED"
    assert receiver.redacted_path(f"/akool-webhook/{route}/{token}") == redacted
    assert receiver.redacted_path(f"/akool-webhook/{route}/{token}/more") == redacted
    assert receiver.redacted_path(f"/root/akool-webhook/{route}/{token}") == f"/root{redacted}"
    for unchanged in ("/akool-webhook/", f"/akool-webhook/{route}", "/api/v2/dags", "/akool/jobs"):
        assert receiver.redacted_path(unchanged) == unchanged


# --- The switch, the registration, and the Airflow internals it rests on -----------------------------


def test_the_receiver_mounts_nothing_unless_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__AKOOL__WEBHOOK_RECEIVER", raising=False)
    assert webhook_receiver._fastapi_apps() == []
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RECEIVER", "True")
    (app,) = webhook_receiver._fastapi_apps()
    assert app["url_prefix"] == "/akool-webhook"
    names = {e.name: e.value for e in entry_points(group="airflow.plugins")}
    assert names["akool_webhook"] == "airflow_provider_akool.plugins.webhook_receiver:AkoolWebhookPlugin"


def test_the_receiver_s_app_is_built_only_when_the_api_server_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every component loads the plugin; only the API server reads fastapi_apps. Importing the plugin, even
    # with the receiver on, neither builds the app nor imports its module (FastAPI and the handler).
    probe = (
        "import sys\n"
        "from airflow_provider_akool.plugins.webhook_receiver import AkoolWebhookPlugin\n"
        "app_module = 'airflow_provider_akool.webhook.receiver'\n"
        "before = app_module in sys.modules\n"
        "apps = AkoolWebhookPlugin.fastapi_apps\n"
        "print(before, [a['url_prefix'] for a in apps], app_module in sys.modules)\n"
    )
    env = {**os.environ, "AIRFLOW__AKOOL__WEBHOOK_RECEIVER": "True"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "False ['/akool-webhook'] True"
    # Read when asked: the setting as it is then, on the class as on an instance.
    from airflow_provider_akool.plugins.webhook_receiver import AkoolWebhookPlugin

    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RECEIVER", "False")
    assert AkoolWebhookPlugin.fastapi_apps == []
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RECEIVER", "True")
    assert [app["url_prefix"] for app in AkoolWebhookPlugin().fastapi_apps] == ["/akool-webhook"]


@pytest.mark.parametrize("views_first", [True, False], ids=["views-first", "receiver-first"])
def test_callbacks_reach_the_receiver_beside_the_akool_views_whichever_is_mounted_first(
    monkeypatch: pytest.MonkeyPatch, views_first: bool
) -> None:
    """
    The API server mounts every plugin's app on one root, and Starlette gives a request to the first mount
    whose prefix matches: with both at ``/akool`` (after the merge of the views) the views, loaded first,
    answered every callback with 404 and tasks waited for their fallback poll.
    """
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_provider_akool.plugins.views import AkoolViewsPlugin

    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RECEIVER", "True")
    apps = [*AkoolViewsPlugin.fastapi_apps, *webhook_receiver._fastapi_apps()]
    root = FastAPI()
    for app in apps if views_first else reversed(apps):
        root.mount(app["url_prefix"], app["app"])  # as airflow.api_fastapi.app.init_plugins does
    route = callback_url.CallbackRoute("d", "r", "t", -1, "akool_default")
    url = callback_url.callback_url("http://testserver", route, callback_url.new_token())
    client = TestClient(root)
    # The receiver's own answer to a callback that is not genuine (400), not a 404 of another app.
    assert (
        client.post(
            url, content=b'{"signature": "forged"}', headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    # And the views still answer at theirs (401: no token), not the receiver.
    assert client.get("/akool/jobs").status_code == 401


def test_the_airflow_internals_the_receiver_relies_on_are_still_there() -> None:
    """If Airflow changes these, this fails in CI before users do (see docs/webhooks.md)."""
    import inspect

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger, handle_event_submit
    from airflow.models.xcom import XComModel

    assert "session" in inspect.signature(Trigger.submit_event).parameters
    assert isinstance(inspect.getattr_static(Trigger, "kwargs"), property)
    assert {"task_instance", "session"} <= set(inspect.signature(handle_event_submit).parameters)
    assert {"dag_id", "task_id", "run_id", "map_index", "session"} <= set(
        inspect.signature(XComModel.set).parameters
    )
    for column in ("trigger_id", "next_method", "next_kwargs", "state", "map_index"):
        assert hasattr(TaskInstance, column)


def test_the_operator_refuses_webhook_url_airflow_without_a_public_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_akool.exceptions import AkoolValidationError

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "")
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_BASE_URL", "")
    with pytest.raises(AkoolValidationError, match=r"webhook_base_url"):
        callback_url.public_base_url()
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_BASE_URL", "ftp://proxy")
    with pytest.raises(AkoolValidationError, match=r"\[akool\] webhook_base_url"):
        callback_url.public_base_url()


CALLBACK_LOG_LINE = "Akool's callback finished the wait: reage job {} is success"


@pytest.mark.parametrize("when", ["after_deferral", "before_deferral"])
def test_the_task_log_says_that_akool_s_callback_finished_the_job(
    setup: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    when: str,
) -> None:
    # The resumed task's own lines (execute_complete), whether the receiver fired the event or the trigger
    # found the callback's mark: Airflow's triggerer only logs the stopped trigger as "cancelled by user
    # action", which reads like a kill.
    caplog.set_level(logging.INFO)
    if when == "after_deferral":
        harness = released_once_deferred(setup)
    else:
        monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_RESUME_SETTLE", "0")
        harness = Harness(hold_before_deferred=2.0)
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id=f"webhook_log_{when}")
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == (["webhook"] if when == "after_deferral" else ["trigger"])
    (akool_id,) = run.ledger["jobs"]
    out, err = capfd.readouterr()
    log = "\n".join((out, err, caplog.text))
    assert CALLBACK_LOG_LINE.format(akool_id) in log


def test_a_polled_finish_does_not_claim_a_callback(
    setup: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Akool cannot reach the receiver: the trigger's poll finishes the task, and the log says no callback.
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("AIRFLOW__AKOOL__WEBHOOK_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(callback_url, "WEBHOOK_POLL_INTERVAL", 1.0)
    harness = Harness()
    run = run_webhook_dag(setup, harness, monkeypatch, dag_id="webhook_log_polled")
    assert run.states[("reage", -1)] == "success", run.failures
    assert harness.fired_by == ["trigger"]
    out, err = capfd.readouterr()
    log = "\n".join((out, err, caplog.text))
    (akool_id,) = run.ledger["jobs"]
    assert f"job {akool_id}" in log  # the task's lines are captured
    assert "Akool's callback finished the wait" not in log
