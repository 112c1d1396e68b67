"""AkoolReageTrigger against the emulator: one event per outcome, serde, restarts, kill, a free event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from airflow.triggers.base import TriggerEvent

from airflow_provider_akool.exceptions import (
    AkoolAccountBannedError,
    AkoolJobFailedError,
    AkoolJobTimeoutError,
    AkoolNotFoundError,
    AkoolServerError,
)
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.models import ReageJob
from airflow_provider_akool.triggers.reage import AkoolReageTrigger
from airflow_provider_akool.wait import WaitEvent
from tests.support.connections import API_KEY
from tests.triggers.poll_records import PATIENCE, PollsAsked, requests_seen, until

try:  # Airflow 3.2+
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow 3.1
    from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]

POLL = 0.1
UNKNOWN_ID = "0123456789abcdef01234567"

Submit = Callable[..., ReageJob]


@pytest.fixture
def submit(akool_connection: object, emulator: object) -> Iterator[Submit]:
    """Submit a reage job of a sample (markers in the name steer the emulator) with the sync hook."""
    hook = AkoolHook()

    def submit(name: str = "portrait.jpg", video: bool = False) -> ReageJob:
        url = f"{emulator.url}/media/samples/{name}"  # type: ignore[attr-defined]
        faces = hook.detect_faces(url).target_image()
        send = hook.submit_video_reage if video else hook.submit_image_reage
        return send(url, 10, faces)

    yield submit
    hook.close()


async def run_to_end(trigger: AkoolReageTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


def rebuilt(trigger: AkoolReageTrigger) -> AkoolReageTrigger:
    """The trigger as a triggerer rebuilds it: from its serialized kwargs, through serde."""
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_akool.triggers.reage.AkoolReageTrigger"
    return AkoolReageTrigger(**deserialize(serialize(kwargs)))


def test_kwargs_survive_a_serde_round_trip() -> None:
    trigger = AkoolReageTrigger(
        result_ids=["a" * 24, "b" * 24],
        akool_conn_id="akool_other",
        poll_interval=2.5,
        deadline=1_900_000_000.5,
        job_id_of={"a" * 24: "20240102082900592-5653", "b" * 24: None},
        not_found_grace=30,
        started_at=1_800_000_000.25,
        max_poll_errors=4,
    )
    classpath, kwargs = trigger.serialize()

    assert deserialize(serialize(kwargs)) == kwargs
    assert rebuilt(trigger).serialize() == (classpath, kwargs)
    assert kwargs == {
        "result_ids": ["a" * 24, "b" * 24],
        "akool_conn_id": "akool_other",
        "poll_interval": 2.5,
        "deadline": 1_900_000_000.5,
        "job_id_of": {"a" * 24: "20240102082900592-5653", "b" * 24: None},
        "not_found_grace": 30.0,
        "started_at": 1_800_000_000.25,
        "max_poll_errors": 4,
    }


async def test_success_fires_one_event_with_the_results_in_the_order_given(
    submit: Submit, emulator_client
) -> None:
    # The emulator's clock stands still until the trigger has seen the jobs unfinished: on a busy machine
    # they could otherwise be done (0.4 s) before its first poll.
    emulator_client.freeze_clock()
    jobs = [submit(), submit("group-faces-2.jpg"), submit()]
    ids = [job.id for job in jobs]
    trigger = rebuilt(AkoolReageTrigger(result_ids=ids, poll_interval=POLL, deadline=time.time() + 20))

    running = asyncio.ensure_future(run_to_end(trigger))
    await until(requests_seen(emulator_client, "listbyids", 1), "the first poll")
    await asyncio.to_thread(emulator_client.advance_clock, 1)
    events = await running

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert payload["error"] is None
    # The emulator never answers in the order asked: the trigger matches by _id.
    assert payload["results"] == [
        {"id": job.id, "job_id": job.job_id, "status": "success", "url": job.url, "reasons": []}
        for job in jobs
    ]
    assert emulator_client.counts()["listbyids"] >= 2
    assert emulator_client.counts()["job_del"] == 0
    WaitEvent.from_payload(payload).raise_for_status()


async def test_a_failed_job_fires_a_failed_event_naming_it(submit: Submit) -> None:
    ok, bad = submit(), submit("portrait-emulator-fail.jpg")
    trigger = AkoolReageTrigger(result_ids=[ok.id, bad.id], poll_interval=POLL, deadline=time.time() + 20)

    (event,) = await run_to_end(trigger)

    assert event.payload["status"] == "failed"
    assert [r["status"] for r in event.payload["results"]] == ["success", "failed"]
    with pytest.raises(AkoolJobFailedError) as raised:
        WaitEvent.from_payload(event.payload).raise_for_status()
    assert (raised.value.akool_id, raised.value.job_id) == (bad.id, bad.job_id)
    assert bad.id in str(raised.value)
    assert bad.job_id in str(raised.value)
    assert "status 4" in str(raised.value)


async def test_the_deadline_fires_a_timeout_event_and_leaves_cancelling_to_the_task(
    submit: Submit, emulator_client
) -> None:
    job = submit("portrait-emulator-stuck.jpg")
    deadline = time.time() + 0.6
    trigger = AkoolReageTrigger(
        result_ids=[job.id], poll_interval=POLL, deadline=deadline, job_id_of={job.id: job.job_id}
    )

    # Ended by the deadline (a wait that ignored it would run on until PATIENCE), not before it.
    (event,) = await asyncio.wait_for(run_to_end(trigger), timeout=PATIENCE)

    assert time.time() >= deadline
    assert event.payload["status"] == "timeout"
    assert event.payload["results"] == [
        {"id": job.id, "job_id": job.job_id, "status": "processing", "url": job.url, "reasons": []}
    ]
    with pytest.raises(AkoolJobTimeoutError, match="did not finish within"):
        WaitEvent.from_payload(event.payload).raise_for_status()
    assert emulator_client.counts()["job_del"] == 0


async def test_an_unknown_id_fires_not_found_after_the_grace(submit: Submit, emulator_client) -> None:
    job = submit()
    trigger = AkoolReageTrigger(
        result_ids=[job.id, UNKNOWN_ID], poll_interval=POLL, deadline=time.time() + 20, not_found_grace=0.5
    )
    started = time.monotonic()

    (event,) = await run_to_end(trigger)

    # Not before the grace (a lower bound: a busy machine only makes the wait longer).
    assert time.monotonic() - started >= 0.5
    assert event.payload["status"] == "not_found"
    assert event.payload["results"][1] == {
        "id": UNKNOWN_ID,
        "job_id": None,
        "status": None,
        "url": None,
        "reasons": [],
    }
    with pytest.raises(AkoolNotFoundError, match=UNKNOWN_ID):
        WaitEvent.from_payload(event.payload).raise_for_status()
    assert emulator_client.counts()["listbyids"] >= 1


async def test_transient_errors_back_off_and_the_wait_goes_on(
    submit: Submit, emulator_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit()
    emulator_client.add_fault("http_500", count=2, path="listbyids")
    emulator_client.add_fault("http_429", count=1, path="listbyids", retry_after=1)
    trigger = AkoolReageTrigger(result_ids=[job.id], poll_interval=POLL, deadline=time.time() + 20)
    poller = trigger.shared_poller()
    assert poller is not None
    asked = PollsAsked(poller, monkeypatch)

    (event,) = await run_to_end(trigger)

    assert event.payload["status"] == "success"
    polls = [r["at"] for r in emulator_client.ledger()["requests"] if r["endpoint"] == "listbyids"]
    assert len(polls) >= 4
    # Doubling from the poll interval, then at least the Retry-After of the 429, as the wait scheduled
    # them: measured between arrivals, a pause counts from the round before it, whose request may have
    # reached the emulator late on a busy machine. Backoffs are kept off the grid, as they are.
    assert asked.pauses(job.id)[:3] == [POLL, 2 * POLL, 1.0]
    assert all(grid is None for _, grid, first in asked.asked[(job.id,)][1:4])
    # The shared poller held its next round for the Retry-After too, from the refusal's reply on: a lower
    # bound between arrivals.
    assert polls[3] - polls[2] >= 1.0 * 0.9


async def test_errors_past_the_bound_fire_an_error_event_with_the_class(
    submit: Submit, emulator_client
) -> None:
    job = submit()
    emulator_client.add_fault("http_500", count=None, path="listbyids", status=503)
    trigger = AkoolReageTrigger(
        result_ids=[job.id], poll_interval=POLL, deadline=time.time() + 20, max_poll_errors=2
    )

    (event,) = await run_to_end(trigger)

    assert event.payload["status"] == "error"
    assert event.payload["error"]["type"] == "AkoolServerError"
    assert emulator_client.counts()["listbyids"] == 3
    with pytest.raises(AkoolServerError) as raised:
        WaitEvent.from_payload(event.payload).raise_for_status()
    assert raised.value.http_status == 503


async def test_a_refused_account_ends_the_wait_at_once_without_leaking_the_key(
    submit: Submit, emulator_client
) -> None:
    job = submit()
    emulator_client.set_account(banned=True)
    trigger = AkoolReageTrigger(result_ids=[job.id], poll_interval=POLL, deadline=time.time() + 20)

    (event,) = await run_to_end(trigger)

    assert event.payload["status"] == "error"
    assert event.payload["error"]["code"] == 1200
    assert emulator_client.counts()["listbyids"] == 1
    assert API_KEY not in json.dumps(event.payload)
    with pytest.raises(AkoolAccountBannedError):
        WaitEvent.from_payload(event.payload).raise_for_status()


async def test_a_triggerer_restart_resumes_the_same_wait(submit: Submit, emulator_client) -> None:
    job = submit("portrait-emulator-stuck.jpg")
    deadline = time.time() + 2.0
    first = AkoolReageTrigger(
        result_ids=[job.id], poll_interval=POLL, deadline=deadline, job_id_of={job.id: job.job_id}
    )
    # The triggerer stops mid-wait (the task is cancelled, on_kill is not called) ...
    running = asyncio.ensure_future(run_to_end(first))
    await until(requests_seen(emulator_client, "listbyids", 1), "the first poll")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    # ... and another one rebuilds the trigger from its kwargs: same deadline, not a fresh timeout.
    second = rebuilt(first)
    assert second.deadline == deadline
    (event,) = await asyncio.wait_for(run_to_end(second), timeout=PATIENCE)

    assert event.payload["status"] == "timeout"
    assert time.time() >= deadline
    assert emulator_client.counts()["job_del"] == 0
    assert emulator_client.ledger()["jobs"][job.id]["status"] == 2


async def kill_after_the_first_poll(trigger: AkoolReageTrigger, emulator_client: Any) -> None:
    """Run ``trigger`` until its first poll, stop it, and kill the task as Airflow does."""
    running = asyncio.ensure_future(run_to_end(trigger))
    await until(requests_seen(emulator_client, "listbyids", 1), "the first poll")
    running.cancel()
    await trigger.on_kill()


async def test_on_kill_cancels_the_jobs_the_task_submitted(submit: Submit, emulator_client) -> None:
    job = submit("portrait-emulator-stuck.jpg")
    trigger = AkoolReageTrigger(
        result_ids=[job.id], poll_interval=POLL, deadline=time.time() + 20, job_id_of={job.id: job.job_id}
    )
    await kill_after_the_first_poll(trigger, emulator_client)

    assert emulator_client.counts()["job_del"] == 1
    remote = emulator_client.ledger()["jobs"][job.id]
    assert (remote["status"], remote["cancelled"]) == (4, True)


async def test_a_row_stored_with_job_ids_rebuilds_and_its_kill_cancels_the_job(
    submit: Submit, emulator_client
) -> None:
    # The kwargs as versions before job_id_of stored them: the _id -> job_id mapping under "job_ids".
    job = submit("portrait-emulator-stuck.jpg")
    stored = {
        "result_ids": [job.id],
        "akool_conn_id": "akool_default",
        "poll_interval": POLL,
        "deadline": time.time() + 20,
        "not_found_grace": 60.0,
        "started_at": time.time(),
        "max_poll_errors": 10,
        "job_ids": {job.id: job.job_id},
    }
    with pytest.warns(DeprecationWarning, match="job_id_of"):
        trigger = AkoolReageTrigger(**deserialize(serialize(stored)))
    assert trigger.job_id_of == {job.id: job.job_id}
    # Stored again under the new name only, with every other value as it was.
    _, kwargs = trigger.serialize()
    assert kwargs == {**{k: v for k, v in stored.items() if k != "job_ids"}, "job_id_of": stored["job_ids"]}
    await kill_after_the_first_poll(trigger, emulator_client)

    assert emulator_client.counts()["job_del"] == 1
    remote = emulator_client.ledger()["jobs"][job.id]
    assert (remote["status"], remote["cancelled"]) == (4, True)


async def test_on_kill_of_a_wait_without_job_ids_cancels_nothing(submit: Submit, emulator_client) -> None:
    job = submit("portrait-emulator-stuck.jpg")
    trigger = AkoolReageTrigger(result_ids=[job.id], poll_interval=POLL, deadline=time.time() + 20)

    await trigger.on_kill()

    assert emulator_client.counts()["job_del"] == 0
    remote = emulator_client.ledger()["jobs"][job.id]
    assert remote["status"] in (1, 2)
    assert remote["cancelled"] is False


async def test_run_makes_no_blocking_call_on_the_event_loop(
    submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit("clip.mp4", video=True)
    loop_thread = threading.get_ident()

    def only_off_the_loop(name: str, blocking: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            # The emulator serves from a thread of its own, which may block as it likes.
            assert threading.get_ident() != loop_thread, f"{name} was called on the event loop"
            return blocking(*args, **kwargs)

        return guarded

    monkeypatch.setattr(time, "sleep", only_off_the_loop("time.sleep", time.sleep))
    monkeypatch.setattr(requests.Session, "request", only_off_the_loop("requests", requests.Session.request))
    trigger = AkoolReageTrigger(result_ids=[job.id], poll_interval=POLL, deadline=time.time() + 20)

    (event,) = await run_to_end(trigger)

    assert event.payload["status"] == "success"
