"""The emulator's switches for result URLs: ``emulator-no-url`` and ``emulator-js-url`` in an input URL."""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_akool.emulator import EmulatorClient, EmulatorServer
from airflow_provider_akool.emulator.jobs import JS_URL
from tests.support.connections import API_KEY

API = "/api/open/v3"
OPTS = "1,2:3,4:5,6:7,8"


def call(emulator: EmulatorServer, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    reply = requests.request(
        method, f"{emulator.url}{API}{path}", headers={"x-api-key": API_KEY}, timeout=10, **kwargs
    )
    body: dict[str, Any] = reply.json()
    assert body["code"] == 1000, body
    return body


def reage(emulator: EmulatorServer, image: str) -> dict[str, Any]:
    image_url = f"{emulator.url}/media/samples/{image}"
    body = {"targetImage": [{"path": image_url, "opts": OPTS}], "face_reage": 3, "modifyImage": image_url}
    data: dict[str, Any] = call(emulator, "POST", "/faceswap/highquality/imgreage", json=body)["data"]
    return data


def entry(emulator: EmulatorServer, akool_id: str) -> dict[str, Any]:
    (result,) = call(emulator, "GET", "/faceswap/result/listbyids", params={"_ids": akool_id})["data"][
        "result"
    ]
    return dict(result)


def background(emulator: EmulatorServer, image: str) -> dict[str, Any]:
    body = {
        "origin_img": f"{emulator.url}/media/samples/{image}",
        "modify_origin_img_size": "32x24",
        "overlay_origin_x": 0,
        "overlay_origin_y": 0,
        "canvas_size": "64x48",
    }
    akool_id = call(emulator, "POST", "/content/image/bg/replace", json=body)["data"]["_id"]
    return {"_id": akool_id}


def info(emulator: EmulatorServer, akool_id: str) -> dict[str, Any]:
    data: dict[str, Any] = call(
        emulator, "GET", "/content/image/infobymodelid", params={"image_model_id": akool_id}
    )["data"]
    return data


def test_no_url_keeps_the_submit_url_and_leaves_it_out_of_the_status_replies(
    emulator: EmulatorServer, emulator_client: EmulatorClient
) -> None:
    job = reage(emulator, "portrait-emulator-no-url.jpg")
    assert job["url"] == f"{emulator.url}/media/results/{job['_id']}.jpg"
    image = background(emulator, "product-emulator-no-url.png")
    emulator_client.advance_clock(5)

    done = entry(emulator, job["_id"])
    assert done["faceswap_status"] == 3
    assert done["url"] == ""
    result = info(emulator, image["_id"])
    assert result["image_status"] == 3
    assert "image" not in result
    assert "external_img" not in result
    # The result itself is still served.
    assert requests.get(job["url"], timeout=10).status_code == 200


def test_js_url_is_every_result_url_of_the_job(
    emulator: EmulatorServer, emulator_client: EmulatorClient
) -> None:
    job = reage(emulator, "portrait-emulator-js-url.jpg")
    image = background(emulator, "product-emulator-js-url.png")
    emulator_client.advance_clock(5)

    assert job["url"] == JS_URL
    assert entry(emulator, job["_id"])["url"] == JS_URL
    assert info(emulator, image["_id"])["image"] == JS_URL


def test_other_jobs_are_unchanged(emulator: EmulatorServer, emulator_client: EmulatorClient) -> None:
    job = reage(emulator, "portrait.jpg")
    emulator_client.advance_clock(5)
    assert (
        entry(emulator, job["_id"])["url"] == job["url"] == f"{emulator.url}/media/results/{job['_id']}.jpg"
    )
