"""The emulator's webhook callbacks, received on loopback and verified as a user's receiver would."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_akool.emulator.jobs import Job
from airflow_provider_akool.emulator.webhooks import ATTEMPTS, loopback_refusal, statuses_reached
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.models import JobStatus
from airflow_provider_akool.webhook import AkoolWebhookEvent, AkoolWebhookVerifier
from tests.support.callback_receiver import CallbackReceiver, StartReceiver

CLIENT_ID = "emulator-webhook-client-id"
# Akool's clientSecret (which is also the API key) has 24 characters: an AES-192 key.
SECRET = "emulator-webhook-key-024"
KEY = {"x-api-key": SECRET}
OPTS = "2804,2182:3607,1897:3341,2566:3519,2920"
QUEUED_SECONDS, PROCESSING_SECONDS = 10.0, 20.0
WAIT_SECONDS = 10.0


@pytest.fixture
def receiver() -> Iterator[StartReceiver]:
    """``receiver(script=[500], delay=0)`` starts a receiver; every one started is stopped after the test."""
    started: list[CallbackReceiver] = []

    def start(
        script: list[int] | None = None, delay: float = 0.0, hold: threading.Event | None = None
    ) -> CallbackReceiver:
        started.append(CallbackReceiver(script, delay, hold))
        return started[-1]

    yield start
    for one in started:
        one.close()


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_key=SECRET,
        client_id=CLIENT_ID,
        queued_seconds=QUEUED_SECONDS,
        processing_seconds=PROCESSING_SECONDS,
        bg_processing_seconds=PROCESSING_SECONDS,
    )
    with EmulatorServer(config) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(server: EmulatorServer) -> Iterator[None]:
    # A frozen clock: a job changes status only when a test advances it.
    server.client.reset()
    server.client.freeze_clock()
    yield
    server.client.reset()


@pytest.fixture
def verifier() -> AkoolWebhookVerifier:
    return AkoolWebhookVerifier(CLIENT_ID, SECRET)


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def callbacks(server: EmulatorServer) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = server.client.ledger()["callbacks"]
    return entries


def submit(server: EmulatorServer, webhook_url: str, image: str = "faces-1.jpg") -> dict[str, Any]:
    body = {
        "targetImage": [{"path": f"{server.url}/media/samples/faces-1.jpg", "opts": OPTS}],
        "face_reage": 10,
        "modifyImage": f"{server.url}/media/samples/{image}",
        "webhookUrl": webhook_url,
    }
    reply = requests.post(
        f"{server.url}/api/open/v3/faceswap/highquality/imgreage", json=body, headers=KEY, timeout=5
    ).json()
    assert reply["code"] == 1000, reply
    data: dict[str, Any] = reply["data"]
    return data


def events(receiver: CallbackReceiver, verifier: AkoolWebhookVerifier, count: int) -> list[AkoolWebhookEvent]:
    bodies = wait_until(
        lambda: len(receiver.received()) >= count and receiver.received(), f"{count} callbacks"
    )
    return [verifier.verify(body) for body in bodies]


def test_a_reage_job_submitted_through_the_hook_calls_back_processing_then_success(
    server: EmulatorServer,
    receiver: StartReceiver,
    verifier: AkoolWebhookVerifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook_receiver = receiver()
    conn = {"conn_type": "akool", "host": server.url, "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_AKOOL_WEBHOOKS", json.dumps(conn))
    hook = AkoolHook("akool_webhooks")
    sample = f"{server.url}/media/samples/faces-1.jpg"
    job = hook.submit_image_reage(sample, 10, [{"path": sample, "opts": OPTS}], webhook_url=hook_receiver.url)

    time.sleep(0.3)
    assert hook_receiver.received() == [], "no callback while the job is queued"
    server.client.advance_clock(QUEUED_SECONDS + PROCESSING_SECONDS)

    processing, success = events(hook_receiver, verifier, 2)
    assert (processing.id, processing.status, processing.url) == (job.id, JobStatus.PROCESSING, None)
    assert (success.id, success.status, success.url, success.type) == (
        job.id,
        JobStatus.SUCCESS,
        job.url,
        "faceswap",
    )
    assert hook.get_reage_results([job.id])[job.id].status is JobStatus.SUCCESS
    time.sleep(0.3)
    assert len(hook_receiver.received()) == 2, "one callback per status, none repeated"
    entries = callbacks(server)
    assert [(e["_id"], e["status"], e["delivered"], e["attempts"]) for e in entries] == [
        (job.id, 2, True, 1),
        (job.id, 3, True, 1),
    ]
    assert all(e["url"] == hook_receiver.url and e["http_status"] == 200 for e in entries)
    assert SECRET not in json.dumps(server.client.ledger())


def test_each_status_is_called_back_when_the_clock_reaches_it(
    server: EmulatorServer, receiver: StartReceiver, verifier: AkoolWebhookVerifier
) -> None:
    listener = receiver()
    submit(server, listener.url)
    server.client.advance_clock(QUEUED_SECONDS)
    (first,) = events(listener, verifier, 1)
    assert first.status is JobStatus.PROCESSING
    server.client.advance_clock(PROCESSING_SECONDS)
    assert [event.status for event in events(listener, verifier, 2)] == [2, 3]


def test_a_receiver_that_answers_500_gets_the_callback_again(
    server: EmulatorServer, receiver: StartReceiver, verifier: AkoolWebhookVerifier
) -> None:
    flaky = receiver(script=[500])
    job = submit(server, flaky.url)
    server.client.set_job_status(job["_id"], 3)
    first, second = events(flaky, verifier, 2)
    assert (first.id, first.status) == (second.id, second.status) == (job["_id"], JobStatus.SUCCESS)
    entry = wait_until(lambda: [e for e in callbacks(server) if e["delivered"]], "the delivered entry")[0]
    assert (entry["attempts"], entry["http_status"], entry["error"]) == (2, 200, None)


def test_a_receiver_that_never_answers_200_is_given_up_after_a_few_attempts(
    server: EmulatorServer, receiver: StartReceiver
) -> None:
    broken = receiver(script=[503] * 50)
    job = submit(server, broken.url)
    server.client.set_job_status(job["_id"], 4)
    entry = wait_until(
        lambda: [e for e in callbacks(server) if e["attempts"] == ATTEMPTS and e["error"]], "the last attempt"
    )[0]
    assert (entry["delivered"], entry["http_status"], entry["error"]) == (False, 503, "HTTP 503")
    time.sleep(0.5)
    assert len(broken.received()) == ATTEMPTS


def test_a_failed_job_calls_back_processing_then_failed_without_url(
    server: EmulatorServer, receiver: StartReceiver, verifier: AkoolWebhookVerifier
) -> None:
    listener = receiver()
    submit(server, listener.url, image="emulator-fail.jpg")
    server.client.advance_clock(QUEUED_SECONDS + PROCESSING_SECONDS)
    processing, failed = events(listener, verifier, 2)
    assert (processing.status, failed.status, failed.url) == (JobStatus.PROCESSING, JobStatus.FAILED, None)
    assert failed.is_terminal


def test_a_job_cancelled_while_queued_calls_back_failed_only(
    server: EmulatorServer, receiver: StartReceiver, verifier: AkoolWebhookVerifier
) -> None:
    listener = receiver()
    job = submit(server, listener.url)
    reply = requests.post(
        f"{server.url}/api/open/v3/faceswap/job/del", json={"job_ids": job["job_id"]}, headers=KEY, timeout=5
    ).json()
    assert reply["code"] == 1000
    (event,) = events(listener, verifier, 1)
    assert event.status is JobStatus.FAILED
    time.sleep(0.3)
    assert len(listener.received()) == 1


def test_a_background_change_calls_back_with_its_image(
    server: EmulatorServer, receiver: StartReceiver, verifier: AkoolWebhookVerifier
) -> None:
    listener = receiver()
    body = {
        "origin_img": f"{server.url}/media/samples/product.png",
        "modify_origin_img_size": "64x64",
        "overlay_origin_x": 0,
        "overlay_origin_y": 0,
        "canvas_size": "128x128",
        "color_code": "#aafbe3",
        "webhookUrl": listener.url,
    }
    reply = requests.post(
        f"{server.url}/api/open/v3/content/image/bg/replace", json=body, headers=KEY, timeout=5
    ).json()
    server.client.advance_clock(QUEUED_SECONDS + PROCESSING_SECONDS)
    _, done = events(listener, verifier, 2)
    info = requests.get(
        f"{server.url}/api/open/v3/content/image/infobymodelid",
        params={"image_model_id": reply["data"]["_id"]},
        headers=KEY,
        timeout=5,
    ).json()["data"]
    assert (done.id, done.status, done.type, done.url) == (
        reply["data"]["_id"],
        JobStatus.SUCCESS,
        "background change",
        info["image"],
    )


def test_a_url_off_the_loopback_host_is_never_called(server: EmulatorServer) -> None:
    job = submit(server, "http://198.51.100.7:8080/hook")
    server.client.set_job_status(job["_id"], 3)
    entry = wait_until(lambda: callbacks(server), "the refused callback")[0]
    assert (entry["attempts"], entry["delivered"], entry["http_status"]) == (0, False, 0)
    assert "not a loopback address" in entry["error"]


def test_a_slow_receiver_does_not_hold_up_the_api(server: EmulatorServer, receiver: StartReceiver) -> None:
    # The receiver holds its answer until the API has answered: an API held up by the delivery would not
    # answer at all (the request times out), however fast or slow the machine.
    answered = threading.Event()
    slow = receiver(hold=answered)
    job = submit(server, slow.url)
    server.client.set_job_status(job["_id"], 3)
    wait_until(slow.received, "the callback to arrive")
    try:
        reply = requests.get(
            f"{server.url}/api/open/v3/faceswap/result/listbyids",
            params={"_ids": job["_id"]},
            headers=KEY,
            timeout=5,
        ).json()
        assert reply["code"] == 1000
        assert not [e for e in callbacks(server) if e["delivered"]], "answered after the delivery"
    finally:
        answered.set()
    wait_until(lambda: [e for e in callbacks(server) if e["delivered"]], "the slow delivery to finish")


def test_a_reset_drops_pending_callbacks(server: EmulatorServer, receiver: StartReceiver) -> None:
    broken = receiver(script=[500] * 50)
    job = submit(server, broken.url)
    server.client.set_job_status(job["_id"], 3)
    wait_until(broken.received, "a first delivery")
    server.client.reset()
    time.sleep(0.5)
    assert callbacks(server) == []
    assert len(broken.received()) < ATTEMPTS


def test_an_emulator_whose_secret_is_no_aes_key_records_why_it_sends_nothing(
    receiver: StartReceiver,
) -> None:
    listener = receiver()
    secret = "emulator-api-key-0123456789"  # 27 bytes: not 16, 24 or 32
    with EmulatorServer(EmulatorConfig(api_key=secret, queued_seconds=0, processing_seconds=0)) as emulator:
        reply = requests.post(
            f"{emulator.url}/api/open/v3/faceswap/highquality/imgreage",
            json={
                "targetImage": [{"path": f"{emulator.url}/media/samples/a.jpg", "opts": OPTS}],
                "face_reage": 5,
                "modifyImage": f"{emulator.url}/media/samples/a.jpg",
                "webhookUrl": listener.url,
            },
            headers={"x-api-key": secret},
            timeout=5,
        ).json()
        assert reply["code"] == 1000
        entries = wait_until(lambda: len(callbacks(emulator)) == 2 and callbacks(emulator), "two entries")
    assert all("client_secret must be 16, 24 or 32 bytes" in e["error"] for e in entries)
    assert all(e["attempts"] == 0 for e in entries)
    assert secret not in json.dumps(entries)
    assert listener.received() == []


def test_stopping_with_deliveries_in_flight_leaves_no_thread(
    receiver: StartReceiver,
) -> None:
    threads = threading.active_count()
    broken = receiver(script=[500] * 50, delay=0.2)
    threads_with_receiver = threading.active_count()
    config = EmulatorConfig(client_id=CLIENT_ID, api_key=SECRET, queued_seconds=0, processing_seconds=0)
    for _ in range(3):
        with EmulatorServer(config) as emulator:
            submit(emulator, broken.url)
            wait_until(broken.received, "a delivery in flight")
        assert not emulator.running
    # The receiver's handler threads finish their answers (to an emulator that is gone).
    wait_until(lambda: threading.active_count() == threads_with_receiver, "the handler threads to end")
    broken.close()
    assert threading.active_count() == threads


def test_a_restart_resumes_a_delivery_cut_short_and_repeats_none(
    receiver: StartReceiver, verifier: AkoolWebhookVerifier
) -> None:
    # The processing callback is taken at once; the success callback is refused three times.
    listener = receiver(script=[200, 500, 500, 500])
    config = EmulatorConfig(client_id=CLIENT_ID, api_key=SECRET, queued_seconds=0, processing_seconds=0)
    emulator = EmulatorServer(config)
    try:
        emulator.start()
        job = submit(emulator, listener.url)
        wait_until(lambda: len(listener.received()) >= 2, "the first try of the success callback")
        emulator.stop()
        assert len(listener.received()) < ATTEMPTS
        emulator.start()
        delivered = wait_until(
            lambda: [e for e in callbacks(emulator) if e["status"] == 3 and e["delivered"]], "the retry"
        )
        assert delivered[0]["attempts"] == 4
        time.sleep(0.3)
        assert [event.status for event in map(verifier.verify, listener.received())] == [2, 3, 3, 3, 3]
        assert {event.id for event in map(verifier.verify, listener.received())} == {job["_id"]}
    finally:
        emulator.stop()


def test_only_loopback_http_urls_are_allowed() -> None:
    for url in ("http://127.0.0.1:9/x", "https://localhost/x", "http://[::1]:8080/", "http://127.10.0.1/"):
        assert loopback_refusal(url) is None, url
    for url in ("http://example.com/x", "http://10.0.0.1/", "ftp://127.0.0.1/", "http://127.0.0.1:x/"):
        assert loopback_refusal(url), url


def test_statuses_reached_follow_the_clock_and_pins() -> None:
    def job(**fields: Any) -> Job:
        return Job(
            id="0" * 24,
            kind="imgreage",
            created_at=1000.0,
            queued_seconds=10,
            processing_seconds=20,
            inputs=[fields.pop("input", "http://x/a.jpg")],
            url="http://x/result.jpg",
            params={},
            **fields,
        )

    plain = job()
    assert [statuses_reached(plain, 1000 + t) for t in (0, 9.9, 10, 29.9, 30, 1e6)] == [
        [],
        [],
        [2],
        [2],
        [2, 3],
        [2, 3],
    ]
    assert statuses_reached(job(input="http://x/emulator-fail.jpg"), 2000) == [2, 4]
    assert statuses_reached(job(input="http://x/emulator-stuck.jpg"), 1e9) == [2]
    cancelled_while_queued = job(forced_status=4, forced_at=1005.0)
    assert statuses_reached(cancelled_while_queued, 2000) == [4]
    cancelled_while_processing = job(forced_status=4, forced_at=1015.0)
    assert statuses_reached(cancelled_while_processing, 2000) == [2, 4]
    pinned_back_to_queued = job(forced_status=1, forced_at=1015.0)
    assert statuses_reached(pinned_back_to_queued, 2000) == [2]
