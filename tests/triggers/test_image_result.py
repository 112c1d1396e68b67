"""AkoolImageResultTrigger against the emulator over real HTTP: one final event for every way a wait ends."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_akool.emulator import EmulatorClient, EmulatorServer
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.triggers.image_result import AkoolImageResultTrigger
from tests.support.connections import API_KEY, ConnectionFactory
from tests.triggers.poll_records import PATIENCE, requests_seen, until

try:  # Airflow 3.2+
    from airflow.sdk.serde import deserialize, serialize
except ImportError:  # Airflow 3.1
    from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]

FAST: dict[str, Any] = {"poll_interval": 0.05}
UNKNOWN_ID = "ffffffffffffffffffffffff"


def submit(emulator: EmulatorServer, origin: str = "product.png") -> str:
    """Submit a background change with the sync hook (as an operator does on the worker); return its id."""
    job = AkoolHook().submit_background_change(
        origin_img=f"{emulator.url}/media/samples/{origin}",
        canvas_size="64x48",
        modify_origin_img_size=(32, 24),
        overlay_origin_x=8,
        overlay_origin_y=8,
        color_code="#aafbe3",
    )
    return job.id


async def events_of(trigger: AkoolImageResultTrigger) -> list[dict[str, Any]]:
    """Every event the trigger yields before ``run()`` returns."""
    return [event.payload async for event in trigger.run()]


def polls(emulator_client: EmulatorClient) -> int:
    return emulator_client.counts()["infobymodelid"]


class TestEvents:
    async def test_success_gives_one_event_with_the_result_url(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        # The emulator's clock stands still until the trigger has seen the job unfinished: on a busy machine
        # it could otherwise be done (0.4 s) before the first poll.
        emulator_client.freeze_clock()
        image_model_id = submit(emulator)
        running = asyncio.ensure_future(events_of(AkoolImageResultTrigger(image_model_id, **FAST)))
        await until(requests_seen(emulator_client, "infobymodelid", 1), "the first poll")
        await asyncio.to_thread(emulator_client.advance_clock, 1)
        events = await running
        assert len(events) == 1
        event = events[0]
        assert event["status"] == "success"
        assert event["id"] == image_model_id
        assert event["url"] == f"{emulator.url}/media/results/{image_model_id}.png"
        assert event["error_reasons"] == []
        assert event["message"]
        assert event["error"] is None
        # The shared schema of every Akool trigger, which the operators resume from.
        assert event["results"] == [
            {"id": image_model_id, "job_id": None, "status": "success", "url": event["url"], "reasons": []}
        ]
        assert polls(emulator_client) >= 2  # it saw the job unfinished, then finished
        json.dumps(event)  # events are stored as JSON

    async def test_failure_carries_akools_reasons(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer
    ) -> None:
        image_model_id = submit(emulator, origin="emulator-fail.png")
        (event,) = await events_of(AkoolImageResultTrigger(image_model_id, **FAST))
        assert event["status"] == "failed"
        assert event["id"] == image_model_id
        assert event["url"] is None
        assert event["error_reasons"]
        assert event["error_reasons"][0]["code"] == 1206
        assert "emulator-fail" in event["error_reasons"][0]["message"]
        assert image_model_id in event["message"]
        assert event["results"][0]["status"] == "failed"

    async def test_a_job_that_never_ends_times_out_at_the_deadline(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer
    ) -> None:
        image_model_id = submit(emulator, origin="emulator-stuck.png")
        started = time.time()
        trigger = AkoolImageResultTrigger(image_model_id, deadline=started + 0.6, started_at=started, **FAST)
        # A deadline taken for anything but epoch seconds would end the wait at once, or never (PATIENCE).
        (event,) = await asyncio.wait_for(events_of(trigger), timeout=PATIENCE)
        assert event["status"] == "timeout"
        assert event["results"][0]["status"] == "processing"
        assert event["url"] is None
        assert "did not finish" in event["message"]
        # The deadline is wall-clock epoch seconds: the event comes once it has passed (a lower bound: a busy
        # machine only makes the wait longer).
        assert time.time() >= started + 0.6

    async def test_a_deadline_already_past_ends_the_wait_after_one_last_look(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        # A triggerer that comes back after the deadline looks once: a job that ended meanwhile is reported.
        image_model_id = submit(emulator, origin="emulator-stuck.png")
        (event,) = await events_of(AkoolImageResultTrigger(image_model_id, deadline=time.time() - 1, **FAST))
        assert event["status"] == "timeout"
        assert polls(emulator_client) == 1

        done_id = submit(emulator)
        emulator_client.advance_clock(2)
        (event,) = await events_of(AkoolImageResultTrigger(done_id, deadline=time.time() - 1, **FAST))
        assert event["status"] == "success"


class TestErrors:
    async def test_transient_errors_back_off_and_the_wait_goes_on(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        image_model_id = submit(emulator)
        # One attempt per poll: two 500s, a dropped connection and a 1005 are four failed polls in a row,
        # each followed by a longer pause, then the wait goes on to the result.
        emulator_client.add_fault("http_500", count=2, path="infobymodelid")
        emulator_client.add_fault("drop", count=1, path="infobymodelid")
        emulator_client.add_fault("code_1005", count=1, path="infobymodelid")
        started = time.monotonic()
        (event,) = await events_of(AkoolImageResultTrigger(image_model_id, max_poll_errors=5, **FAST))
        assert event["status"] == "success"
        requests = [r for r in emulator_client.ledger()["requests"] if r["endpoint"] == "infobymodelid"]
        assert [r["http_status"] for r in requests[:3]] == [500, 500, 0]
        assert requests[3]["code"] == 1005
        assert requests[4]["code"] == 1000
        # Backed off: 0.05 + 0.1 + 0.2 + 0.4 s between the failed polls, not a hot loop.
        assert time.monotonic() - started >= 0.75

    async def test_errors_that_persist_end_the_wait_with_one_error_event(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        image_model_id = submit(emulator)
        emulator_client.add_fault("http_500", count=None, path="infobymodelid", status=503)
        (event,) = await events_of(AkoolImageResultTrigger(image_model_id, max_poll_errors=3, **FAST))
        assert event["status"] == "error"
        assert event["error"]["type"] == "AkoolServerError"
        assert "503" in event["message"]
        assert polls(emulator_client) == 3 + 1  # the bound: 3 failed polls are waited out, the 4th ends it

    async def test_an_id_akool_does_not_know_ends_the_wait_after_the_grace(
        self, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        started = time.time()
        trigger = AkoolImageResultTrigger(UNKNOWN_ID, not_found_grace=0.3, started_at=started, **FAST)
        (event,) = await events_of(trigger)
        assert event["status"] == "not_found"
        assert event["id"] == UNKNOWN_ID
        assert UNKNOWN_ID in event["message"]
        # Not before the grace (a lower bound: a busy machine only makes the wait longer).
        assert time.time() - started >= 0.3
        assert polls(emulator_client) >= 1

    async def test_a_refused_key_ends_the_wait_without_showing_the_key(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer
    ) -> None:
        image_model_id = submit(emulator)
        akool_connection(password="wrong-key-0123456789")
        (event,) = await events_of(AkoolImageResultTrigger(image_model_id, **FAST))
        assert event["status"] == "error"
        assert event["error"]["code"] == 1101
        assert event["error"]["type"] == "AkoolInvalidTokenError"
        assert "wrong-key-0123456789" not in json.dumps(event)
        assert API_KEY not in json.dumps(event)


class TestTriggererBehaviour:
    def test_kwargs_survive_the_serde_round_trip(self) -> None:
        trigger = AkoolImageResultTrigger(
            "65a1b2c3d4e5f60718293a4b",
            akool_conn_id="akool_other",
            poll_interval=7,
            deadline=1_900_000_000.5,
            not_found_grace=30,
            started_at=1_899_999_000.25,
            max_poll_errors=4,
        )
        classpath, kwargs = trigger.serialize()
        assert classpath == "airflow_provider_akool.triggers.image_result.AkoolImageResultTrigger"
        encoded = json.loads(json.dumps(serialize(kwargs)))
        restored = deserialize(encoded)
        assert restored == kwargs
        assert AkoolImageResultTrigger(**restored).serialize() == (classpath, kwargs)

    async def test_a_rebuilt_trigger_resumes_the_same_wait(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        image_model_id = submit(emulator, origin="emulator-stuck.png")
        first = AkoolImageResultTrigger(image_model_id, deadline=time.time() + 60, **FAST)
        # The triggerer stops: the running wait is cancelled mid-way, without an event.
        task = asyncio.ensure_future(events_of(first))
        await until(requests_seen(emulator_client, "infobymodelid", 1), "the first poll")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert polls(emulator_client) >= 1
        emulator_client.set_job_status(image_model_id, 3)
        # Another triggerer rebuilds it from its serialized kwargs and carries on to the one event.
        _, kwargs = first.serialize()
        restored: dict[str, Any] = deserialize(serialize(kwargs))  # type: ignore[assignment]
        (event,) = await events_of(AkoolImageResultTrigger(**restored))
        assert event["status"] == "success"

    async def test_a_rebuilt_trigger_counts_from_the_original_start(
        self, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        # Began 30 s ago with a 20 s grace for an unknown id: after a restart the grace is not granted again.
        original = AkoolImageResultTrigger(
            UNKNOWN_ID, not_found_grace=20, started_at=time.time() - 30, **FAST
        )
        restored: dict[str, Any] = deserialize(serialize(original.serialize()[1]))  # type: ignore[assignment]
        (event,) = await events_of(AkoolImageResultTrigger(**restored))
        assert event["status"] == "not_found"
        assert polls(emulator_client) == 1

    async def test_run_never_blocks_the_event_loop(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        image_model_id = submit(emulator)
        # The first reply is held back 2 s: a blocking call in run() would freeze the loop for that long, far
        # past what a busy machine holds a loop up.
        emulator_client.add_fault("slow", count=1, path="infobymodelid", seconds=2.0)
        worst_lag = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst_lag
            while not done.is_set():
                before = time.monotonic()
                await asyncio.sleep(0.01)
                worst_lag = max(worst_lag, time.monotonic() - before - 0.01)

        ticking = asyncio.ensure_future(ticker())
        try:
            (event,) = await events_of(AkoolImageResultTrigger(image_model_id, **FAST))
        finally:
            done.set()
            await ticking
        assert event["status"] == "success"
        assert worst_lag < 1.0, f"the event loop was blocked for {worst_lag:.2f} s"

    async def test_on_kill_only_ends_the_wait(
        self, akool_connection: ConnectionFactory, emulator_client: EmulatorClient
    ) -> None:
        # Background change has no cancel endpoint: killing the task sends nothing to Akool.
        await AkoolImageResultTrigger(UNKNOWN_ID, **FAST).on_kill()
        assert sum(emulator_client.counts().values()) == 0
