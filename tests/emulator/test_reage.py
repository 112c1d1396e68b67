"""Reage over real HTTP: submit, poll, cancel, results, validation and the clock-driven status."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_akool.emulator.media import MP4_HEADER, pattern_block
from tests.support.akool_replies import SEED_LISTBYIDS

KEY = {"x-api-key": "emulator-api-key"}
API = "/api/open/v3"
SUBMIT_MSG = (
    "Please be patient! If your results are not generated in three hours, please check your input image."
)
OPTS = "2804,2182:3607,1897:3341,2566:3519,2920"
# The listbyids example of the seed page, the reference for field names.
SEED_RESULT: dict[str, Any] = SEED_LISTBYIDS["data"]["result"][0]


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        queued_seconds=10, processing_seconds=20, video_processing_seconds=30, max_listbyids=5
    )
    with EmulatorServer(config) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(server: EmulatorServer) -> None:
    server.client.reset()


def image_body(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetImage": [{"path": f"{server.url}/media/samples/faces-1.jpg", "opts": OPTS}],
        "face_reage": 10,
        "modifyImage": f"{server.url}/media/samples/faces-1.jpg",
        "webhookUrl": "http://localhost:3007/api/webhook",
    }
    body.update(overrides)
    return body


def post(server: EmulatorServer, path: str, body: Any) -> dict[str, Any]:
    response = requests.post(f"{server.url}{API}/{path}", json=body, headers=KEY, timeout=10)
    assert response.status_code == 200
    reply: dict[str, Any] = response.json()
    return reply


def submit(server: EmulatorServer, kind: str = "imgreage", **overrides: Any) -> dict[str, Any]:
    body = image_body(server, **overrides)
    if kind == "vidreage":
        body["modifyVideo"] = body.pop("modifyImage").replace(".jpg", ".mp4")
    reply = post(server, f"faceswap/highquality/{kind}", body)
    assert reply["code"] == 1000, reply
    data: dict[str, Any] = reply["data"]
    return data


def listbyids(server: EmulatorServer, ids: list[str]) -> dict[str, Any]:
    response = requests.get(
        f"{server.url}{API}/faceswap/result/listbyids",
        params={"_ids": ",".join(ids)},
        headers=KEY,
        timeout=10,
    )
    reply: dict[str, Any] = response.json()
    return reply


def status_of(server: EmulatorServer, _id: str) -> int:
    (result,) = listbyids(server, [_id])["data"]["result"]
    status: int = result["faceswap_status"]
    return status


@pytest.mark.parametrize(("kind", "ext"), [("imgreage", "jpg"), ("vidreage", "mp4")])
def test_submit_reply_matches_the_seed(server: EmulatorServer, kind: str, ext: str) -> None:
    body = image_body(server)
    if kind == "vidreage":
        body["modifyVideo"] = body.pop("modifyImage")
    reply = post(server, f"faceswap/highquality/{kind}", body)
    assert reply["code"] == 1000
    assert reply["msg"] == SUBMIT_MSG
    data = reply["data"]
    assert set(data) == {"_id", "url", "job_id"}
    assert re.fullmatch(r"[0-9a-f]{24}", data["_id"])
    assert re.fullmatch(r"\d{17}-\d{4}", data["job_id"])
    assert data["url"] == f"{server.url}/media/results/{data['_id']}.{ext}"
    job = server.client.ledger()["jobs"][data["_id"]]
    assert job == {
        "job_id": data["job_id"],
        "kind": kind,
        "status": 1,
        "webhook_url": "http://localhost:3007/api/webhook",
        "cancelled": False,
    }


def test_listbyids_result_has_the_seed_fields(server: EmulatorServer) -> None:
    data = submit(server)
    reply = listbyids(server, [data["_id"]])
    assert reply["code"] == 1000
    assert reply["msg"] == "OK"
    (result,) = reply["data"]["result"]
    assert set(result) == set(SEED_RESULT) | {"job_id"}
    for name, value in SEED_RESULT.items():
        assert type(result[name]) is type(value), name
    assert result["_id"] == data["_id"]
    assert result["job_id"] == data["job_id"]
    assert result["url"] == data["url"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", result["createdAt"])


def test_status_follows_the_clock(server: EmulatorServer) -> None:
    _id = submit(server)["_id"]
    assert status_of(server, _id) == 1
    server.client.advance_clock(10)
    assert status_of(server, _id) == 2
    server.client.advance_clock(20)
    assert status_of(server, _id) == 3


def test_video_takes_its_own_processing_time(server: EmulatorServer) -> None:
    _id = submit(server, "vidreage")["_id"]
    server.client.advance_clock(10 + 20)
    assert status_of(server, _id) == 2
    server.client.advance_clock(10)
    assert status_of(server, _id) == 3


@pytest.mark.parametrize("where", ["modifyImage", "path"])
def test_fail_marker_fails_the_job_after_processing(server: EmulatorServer, where: str) -> None:
    url = f"{server.url}/media/samples/emulator-fail.jpg"
    overrides: dict[str, Any] = (
        {"modifyImage": url} if where == "modifyImage" else {"targetImage": [{"path": url, "opts": OPTS}]}
    )
    _id = submit(server, **overrides)["_id"]
    server.client.advance_clock(10)
    assert status_of(server, _id) == 2
    server.client.advance_clock(20)
    assert status_of(server, _id) == 4


def test_stuck_marker_never_finishes(server: EmulatorServer) -> None:
    _id = submit(server, modifyImage="https://cdn.example/emulator-stuck.jpg")["_id"]
    server.client.advance_clock(365 * 24 * 3600)
    assert status_of(server, _id) == 2


def test_control_api_forces_a_status(server: EmulatorServer) -> None:
    _id = submit(server)["_id"]
    server.client.set_job_status(_id, 4)
    assert status_of(server, _id) == 4
    server.client.set_job_status(_id, 3)
    assert status_of(server, _id) == 3
    with pytest.raises(requests.HTTPError):
        server.client.set_job_status("0" * 24, 3)
    with pytest.raises(requests.HTTPError):
        server.client.set_job_status(_id, 5)


def test_listbyids_order_is_not_the_order_asked_and_unknown_ids_are_left_out(server: EmulatorServer) -> None:
    ids = []
    for _ in range(3):
        ids.append(submit(server)["_id"])
        server.client.advance_clock(0.01)  # distinct createdAt
    unknown = "0123456789abcdef01234567"
    for asked in (ids, list(reversed(ids)), [ids[1], unknown, ids[0], ids[2]]):
        reply = listbyids(server, asked)
        returned = [result["_id"] for result in reply["data"]["result"]]
        assert sorted(returned) == sorted(ids)
        assert returned != [i for i in asked if i != unknown]
    assert listbyids(server, [unknown])["data"]["result"] == []


def test_listbyids_records_the_ids_asked(server: EmulatorServer) -> None:
    listbyids(server, ["a", "b"])
    assert server.client.ledger()["listbyids_ids"] == [["a", "b"]]


@pytest.mark.parametrize("ids", [None, "", " , "])
def test_listbyids_without_ids_is_1003(server: EmulatorServer, ids: str | None) -> None:
    params = {} if ids is None else {"_ids": ids}
    response = requests.get(
        f"{server.url}{API}/faceswap/result/listbyids", params=params, headers=KEY, timeout=5
    )
    reply = response.json()
    assert response.status_code == 200
    assert reply["code"] == 1003
    assert "_ids" in reply["msg"]


def test_listbyids_bound(server: EmulatorServer) -> None:
    ids = [f"{i:024x}" for i in range(6)]
    reply = listbyids(server, ids)
    assert reply["code"] == 1003
    assert "_ids" in reply["msg"]
    assert "5" in reply["msg"]
    assert listbyids(server, ids[:5])["code"] == 1000


def test_cancel_fails_running_jobs_and_leaves_finished_ones(server: EmulatorServer) -> None:
    finished = submit(server)
    server.client.advance_clock(30)
    queued = submit(server)
    processing = submit(server, "vidreage")
    server.client.advance_clock(10)
    assert status_of(server, processing["_id"]) == 2
    job_ids = ",".join(job["job_id"] for job in (finished, queued, processing))
    reply = post(server, "faceswap/job/del", {"job_ids": job_ids})
    assert reply == {"code": 1000, "msg": "OK"}
    assert status_of(server, finished["_id"]) == 3
    assert status_of(server, queued["_id"]) == 4
    assert status_of(server, processing["_id"]) == 4
    jobs = server.client.ledger()["jobs"]
    assert [jobs[job["_id"]]["cancelled"] for job in (finished, queued, processing)] == [False, True, True]


def test_cancel_unknown_or_missing(server: EmulatorServer) -> None:
    assert post(server, "faceswap/job/del", {"job_ids": "20240102082900592-5653"})["code"] == 1008
    for body in ({}, {"job_ids": ""}, {"job_ids": 5}):
        reply = post(server, "faceswap/job/del", body)
        assert reply["code"] == 1003
        assert "job_ids" in reply["msg"]


def test_cancel_by_id_is_not_by_job_id(server: EmulatorServer) -> None:
    _id = submit(server)["_id"]
    assert post(server, "faceswap/job/del", {"job_ids": _id})["code"] == 1008


BAD_BODIES = [
    ({"targetImage": None}, "targetImage"),
    ({"targetImage": []}, "targetImage"),
    ({"targetImage": "x"}, "targetImage"),
    ({"targetImage": ["x"]}, "targetImage[0]"),
    ({"targetImage": [{"opts": OPTS}]}, "targetImage[0].path"),
    ({"targetImage": [{"path": "https://a/b.jpg", "opts": "1,2:3,4"}]}, "targetImage[0].opts"),
    ({"targetImage": [{"path": "https://a/b.jpg", "opts": "1.5,2:3,4:5,6:7,8"}]}, "targetImage[0].opts"),
    ({"face_reage": 31}, "face_reage"),
    ({"face_reage": -31}, "face_reage"),
    ({"face_reage": "10"}, "face_reage"),
    ({"face_reage": 10.0}, "face_reage"),
    ({"face_reage": True}, "face_reage"),
    ({"face_reage": None}, "face_reage"),
    ({"modifyImage": None}, "modifyImage"),
    ({"modifyImage": "ftp://a/b.jpg"}, "modifyImage"),
    ({"modifyImage": "not a url"}, "modifyImage"),
    ({"webhookUrl": 5}, "webhookUrl"),
]


@pytest.mark.parametrize(("overrides", "name"), BAD_BODIES)
def test_bad_parameters_are_1003_naming_the_parameter(
    server: EmulatorServer, overrides: dict[str, Any], name: str
) -> None:
    reply = post(server, "faceswap/highquality/imgreage", image_body(server, **overrides))
    assert reply["code"] == 1003
    assert reply["msg"].startswith(f"Parameter error: {name} ")
    assert server.client.ledger()["jobs"] == {}


def test_face_reage_message_is_exact(server: EmulatorServer) -> None:
    reply = post(server, "faceswap/highquality/imgreage", image_body(server, face_reage=40))
    assert reply["msg"] == "Parameter error: face_reage must be an integer in [-30, 30]"


def test_range_ends_and_modify_video_are_checked(server: EmulatorServer) -> None:
    assert submit(server, face_reage=-30)["_id"]
    assert submit(server, face_reage=30)["_id"]
    reply = post(server, "faceswap/highquality/vidreage", image_body(server))  # modifyImage, not modifyVideo
    assert reply["code"] == 1003
    assert "modifyVideo" in reply["msg"]


def test_not_json_body_is_1003(server: EmulatorServer) -> None:
    response = requests.post(
        f"{server.url}{API}/faceswap/highquality/imgreage", data=b"{nope", headers=KEY, timeout=5
    )
    assert response.json()["code"] == 1003


def test_more_than_eight_faces_is_1007(server: EmulatorServer) -> None:
    targets = [{"path": "https://a/b.jpg", "opts": OPTS}] * 9
    assert (
        post(server, "faceswap/highquality/imgreage", image_body(server, targetImage=targets))["code"] == 1007
    )
    assert submit(server, targetImage=targets[:8])["_id"]


def test_image_result_is_a_labelled_image_only_after_success(server: EmulatorServer) -> None:
    data = submit(server, face_reage=-7)
    assert requests.get(data["url"], timeout=5).status_code == 404
    server.client.advance_clock(30)
    response = requests.get(data["url"], timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert int(response.headers["content-length"]) == len(response.content)
    assert Image.open(io.BytesIO(response.content)).size == (512, 512)


def test_failed_job_has_no_result(server: EmulatorServer) -> None:
    data = submit(server, modifyImage="https://cdn.example/emulator-fail.jpg")
    server.client.advance_clock(30)
    assert requests.get(data["url"], timeout=5).status_code == 404


def test_video_result_streams_deterministic_bytes(server: EmulatorServer) -> None:
    data = submit(server, "vidreage")
    server.client.advance_clock(40)
    response = requests.get(data["url"], timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    size = 256 * 1024
    assert int(response.headers["content-length"]) == size == len(response.content)
    assert response.content.startswith(MP4_HEADER)
    assert response.content[64 * 1024 : 128 * 1024] == pattern_block()


def test_results_expire_after_the_ttl(server: EmulatorServer) -> None:
    data = submit(server)
    server.client.advance_clock(30)
    assert requests.get(data["url"], timeout=5).status_code == 200
    server.client.advance_clock(7 * 24 * 3600 + 1)
    response = requests.get(data["url"], timeout=5)
    assert response.status_code == 404
    assert "expired" in response.json()["detail"]
    assert status_of(server, data["_id"]) == 3


def test_result_url_with_the_wrong_extension_is_404(server: EmulatorServer) -> None:
    data = submit(server)
    server.client.advance_clock(30)
    assert requests.get(data["url"].replace(".jpg", ".png"), timeout=5).status_code == 404
