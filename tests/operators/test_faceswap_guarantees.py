"""
Reage's guarantees, held by face swap: object-storage inputs (signed, downloaded by Akool, never leaked),
the Akool tab and page, lineage, ``webhook_url="airflow"`` through the receiver, and the emulator's faults
on the face swap endpoints (submits never sent twice, polls carrying on), all over real HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from airflow.sdk import ObjectStoragePath, dag

from airflow_provider_akool.emulator import EmulatorClient, EmulatorServer
from airflow_provider_akool.exceptions import AkoolSubmitOutcomeUnknownError
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.kinds import FACESWAP, FACESWAP_PRO
from airflow_provider_akool.operators.faceswap import (
    AkoolFaceSwapProOperator,
    AkoolImageFaceSwapOperator,
    AkoolVideoFaceSwapOperator,
)
from tests.support import views_auth as auth_bench
from tests.support import webhook_receiver as receiver_bench
from tests.support.connections import ConnectionFactory
from tests.support.dag_runs import START, run_recorded
from tests.support.s3_objects import put
from tests.support.samples import sample
from tests.support.views_auth import token
from tests.support.webhook_receiver import completes_on_callback

#: Fixtures asked for by name: the views' auth manager; the receiver's emulator, app and connection.
views_auth = auth_bench.auth
wh_emulator, receiver_url, webhook_setup = (
    receiver_bench.wh_emulator,
    receiver_bench.receiver_url,
    receiver_bench.setup,
)
AMBIGUOUS = "It was not sent again, because a second job would be paid for twice"


# --- Object-storage inputs ---------------------------------------------------------------------------


def test_object_storage_inputs_are_signed_downloaded_by_akool_and_never_leak(
    bucket: Any,
    emulator: EmulatorServer,
    emulator_client: EmulatorClient,
    akool_connection: ConnectionFactory,
    airflow_db: Any,
) -> None:
    objects = {
        name: requests.get(sample(emulator, f"{name}.jpg"), timeout=10).content
        for name in ("alice", "bob", "group-faces-2")
    }
    objects["clip"] = requests.get(sample(emulator, "clip.mp4"), timeout=10).content
    # The key keeps the sample's name: face detect counts the faces by the faces-N marker in the URL.
    uris = {
        name: put(bucket, data, f"-{name}.mp4" if name == "clip" else f"-{name}.jpg")
        for name, data in objects.items()
    }
    digests = {hashlib.sha256(data).hexdigest(): name for name, data in objects.items()}
    face = {"path": uris["bob"], "opts": "1,2:3,4:5,6:7,8"}
    waits = {"poll_interval": 0.2}

    @dag(dag_id="faceswap_inputs_from_s3", schedule=None, start_date=START)
    def faceswap_inputs_from_s3() -> None:
        AkoolImageFaceSwapOperator(
            task_id="image",
            modify_image=ObjectStoragePath(uris["group-faces-2"]),
            source_image=[uris["alice"], uris["bob"]],
            deferrable=True,
            **waits,
        )
        AkoolVideoFaceSwapOperator(
            task_id="video",
            modify_video=uris["clip"],
            source_image=uris["alice"],
            target_image=[face],
            **waits,
        )
        AkoolFaceSwapProOperator(task_id="pro", modify_image=uris["bob"], source_image=uris["alice"], **waits)

    run = run_recorded(faceswap_inputs_from_s3(), emulator_client)

    assert set(run.states.values()) == {"success"}, run.failures
    fetched = {job["kind"]: job["fetched_inputs"] for job in run.ledger["jobs"].values()}
    # Akool downloaded every input itself, through the URL signed for it: the bytes match.
    assert [(f["field"], digests[f["sha256"]], f["http_status"]) for f in fetched["specifyimage"]] == [
        ("modifyImage", "group-faces-2", 200),
        ("targetImage[0].path", "group-faces-2", 200),
        ("targetImage[1].path", "group-faces-2", 200),
        ("sourceImage[0].path", "alice", 200),
        ("sourceImage[1].path", "bob", 200),
    ]
    assert [(f["field"], digests[f["sha256"]]) for f in fetched["specifyvideo"]] == [
        ("modifyVideo", "clip"),
        ("targetImage[0].path", "bob"),
        ("sourceImage[0].path", "alice"),
    ]
    assert [(f["field"], digests[f["sha256"]]) for f in fetched["faceswapByImage"]] == [
        ("targetImage[0].path", "bob"),
        ("sourceImage[0].path", "alice"),
    ]
    # No signed URL in XCom or the rendered fields: the URIs only.
    for task_id in ("image", "video", "pro"):
        stored = json.dumps([run.value(task_id), run.rendered(task_id)], default=str)
        assert "Signature" not in stored
        assert "X-Amz-" not in stored
    assert run.rendered("pro")["source_image"] == uris["alice"]


# --- The Akool tab and page, and lineage -------------------------------------------------------------


@pytest.fixture
def views_client(views_auth: Any) -> Any:
    from fastapi.testclient import TestClient

    from airflow_provider_akool.plugins import views_app

    return TestClient(views_app.app)


def test_face_swap_jobs_show_in_the_views_and_lineage(
    airflow_db: Any,
    emulator: EmulatorServer,
    akool_connection: ConnectionFactory,
    views_auth: Any,
    views_client: Any,
) -> None:
    group, alice, bob = (sample(emulator, f"{n}.jpg") for n in ("group-faces-1", "alice", "bob"))

    @dag(dag_id="faceswap_views", schedule=None, start_date=START)
    def faceswap_views() -> None:
        AkoolImageFaceSwapOperator(task_id="image", modify_image=group, source_image=alice, poll_interval=0.2)
        AkoolFaceSwapProOperator(
            task_id="pro", modify_image=bob, source_image=alice, poll_interval=0.2, deferrable=True
        )

    run = run_recorded(faceswap_views(), emulator.client)
    assert run.state == "success", run.failures

    cookies = {"_token": token(views_auth, "viewer")}
    for task_id, shown in (("image", group), ("pro", bob)):
        ti = run.tis[(task_id, -1)]
        page = views_client.get(f"/task/{ti.dag_id}/{ti.run_id}/{ti.task_id}/-1", cookies=cookies).text
        # The picture changed beside the result.
        assert re.findall(r"<img class='full (input|result)' src='([^']+)'", page) == [
            ("input", shown),
            ("result", run.value(task_id)["url"]),
        ]
    listing = views_client.get("/jobs", cookies=cookies).text
    assert run.value("image")["id"] in listing
    assert run.value("pro")["id"] in listing

    # Lineage: the picture changed and each source portrait are inputs, the result the output.
    for operator, task_id, kind in (
        (
            AkoolImageFaceSwapOperator(task_id="l1", modify_image=group, source_image=alice),
            "image",
            "faceswap",
        ),
        (AkoolFaceSwapProOperator(task_id="l2", modify_image=bob, source_image=alice), "pro", "faceswap pro"),
    ):
        operator.validate_inputs()
        operator.note_lineage_job(run.value(task_id))
        lineage = operator.get_openlineage_facets_on_complete(None)
        assert [(d.namespace, d.name) for d in lineage.inputs] == [
            (emulator.url, urlsplit(operator.modify_image).path),
            (emulator.url, "/media/samples/alice.jpg"),
        ]
        assert [d.name for d in lineage.outputs] == [urlsplit(run.value(task_id)["url"]).path]
        assert lineage.run_facets["akool"].job_kind == kind


# --- webhook_url="airflow" -----------------------------------------------------------------------------


def test_face_swap_completes_on_akools_callback_through_the_receiver(
    webhook_setup: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = completes_on_callback(
        webhook_setup,
        monkeypatch,
        "faceswap_webhook",
        AkoolFaceSwapProOperator,
        polls_before_deferring=1,
        modify_image=sample(webhook_setup, "bob.jpg"),
        source_image=sample(webhook_setup, "alice.jpg"),
    )

    result = run.value("job")
    # v4's submit reply has no URL, so the task polled once before deferring, and only then: that poll gave
    # the result link the task showed while deferred. The callback, not a poll, finished the wait.
    assert result["url"].endswith(f"/media/results/{result['id']}.jpg")
    endpoints = [
        r["endpoint"] for r in run.ledger["requests"] if r["endpoint"] in ("faceswapByImage", "listbyids")
    ]
    assert endpoints == ["faceswapByImage", "listbyids"]
    assert run.value("job", key="akool_result_url") == result["url"]
    assert [c["type"] for c in run.ledger["callbacks"]]
    assert {c["type"] for c in run.ledger["callbacks"]} == {"faceswap"}


# --- Faults on the face swap endpoints ----------------------------------------------------------------


def submit(transport: str, kind: Any, hook: AkoolHook, params: dict[str, Any]) -> Any:
    if transport == "sync":
        return kind.submit_job(hook, params)

    async def go() -> Any:
        async with hook:
            return await kind.asubmit_job(hook, params)

    return asyncio.run(go())


# endpoint -> (kind, params maker)
def params_for(emulator: EmulatorServer, endpoint: str) -> tuple[Any, dict[str, Any]]:
    face = {"path": sample(emulator, "alice.jpg"), "opts": "1,2:3,4:5,6:7,8"}
    if endpoint == "faceswapByImage":
        return FACESWAP_PRO, {
            "source_image": [{"path": face["path"]}],
            "target_image": [{"path": sample(emulator, "bob.jpg")}],
        }
    media = {"specifyimage": "modify_image", "specifyvideo": "modify_video"}[endpoint]
    name = "clip.mp4" if endpoint == "specifyvideo" else "bob.jpg"
    return FACESWAP, {media: sample(emulator, name), "source_image": [face], "target_image": [face]}


# name: (fault, error or None, submit requests, jobs)
SUBMIT_FAULTS: dict[str, tuple[dict[str, Any], Any, int, int]] = {
    "5xx_after_it_ran": ({"kind": "http_500", "after": True}, AkoolSubmitOutcomeUnknownError, 1, 1),
    "drop_mid_body": ({"kind": "drop", "mode": "mid_body"}, AkoolSubmitOutcomeUnknownError, 1, 1),
    "5xx_before": ({"kind": "http_500", "status": 502}, AkoolSubmitOutcomeUnknownError, 1, 0),
    "1005_twice": ({"kind": "code_1005", "count": 2}, None, 3, 1),
    "429_once": ({"kind": "http_429", "retry_after": 0.2}, None, 2, 1),
}


@pytest.mark.parametrize("transport", ["sync", "async"])
@pytest.mark.parametrize("endpoint", ["specifyimage", "specifyvideo", "faceswapByImage"])
@pytest.mark.parametrize("name", list(SUBMIT_FAULTS))
def test_a_submit_fault_is_retried_only_when_nothing_was_created(
    emulator: EmulatorServer,
    emulator_client: EmulatorClient,
    akool_connection: ConnectionFactory,
    transport: str,
    endpoint: str,
    name: str,
) -> None:
    spec, error, requests_made, jobs = SUBMIT_FAULTS[name]
    spec = {"count": 1, **spec}
    emulator_client.add_fault(spec.pop("kind"), count=spec.pop("count"), path=endpoint, **spec)
    hook = AkoolHook(akool_connection("akool_faceswap_faults"), retry_limit=3, retry_delay=0.05)
    kind, params = params_for(emulator, endpoint)

    if error is None:
        job = submit(transport, kind, hook, params)
        assert list(emulator_client.ledger()["jobs"]) == [job.id]
        assert job.job_id
    else:
        with pytest.raises(error) as raised:
            submit(transport, kind, hook, params)
        assert AMBIGUOUS in str(raised.value)
    ledger = emulator_client.ledger()
    assert ledger["counts"][endpoint] == requests_made
    assert len(ledger["jobs"]) == jobs


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_poll_faults_cost_a_poll_not_the_wait(
    airflow_db: Any,
    emulator: EmulatorServer,
    emulator_client: EmulatorClient,
    akool_connection: Any,
    mode: str,
) -> None:
    # A 500, a dropped connection and a reply that is not JSON on listbyids: the wait carries on.
    for kind, extra in (("http_500", {}), ("drop", {"mode": "close"}), ("not_json", {})):
        emulator_client.add_fault(kind, count=1, path="listbyids", **extra)

    @dag(dag_id=f"faceswap_poll_faults_{mode}", schedule=None, start_date=START)
    def poll_faults() -> None:
        AkoolImageFaceSwapOperator(
            task_id="image",
            modify_image=sample(emulator, "bob.jpg"),
            source_image=sample(emulator, "alice.jpg"),
            poll_interval=0.2,
            deferrable=mode == "defer",
            retries=0,
        )

    run = run_recorded(poll_faults(), emulator_client)

    assert run.states[("image", -1)] == "success", run.failures
    assert run.value("image")["status"] == "success"
    assert emulator_client.faults() == []
    statuses = [r["http_status"] for r in run.ledger["requests"] if r["endpoint"] == "listbyids"]
    assert 500 in statuses
    assert statuses[-1] == 200
    assert run.ledger["counts"]["specifyimage"] == 1
