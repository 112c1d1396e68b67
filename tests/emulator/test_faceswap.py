"""Face swap over real HTTP: image, video and Face Swap Pro, polled and cancelled with reage's endpoints."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_akool.emulator.faces import faces_for
from airflow_provider_akool.emulator.media import MP4_HEADER, looks_of
from airflow_provider_akool.webhook import AkoolWebhookVerifier
from tests.support.callback_receiver import CallbackReceiver

CLIENT_ID = "emulator-faceswap-client-id"
SECRET = "emulator-faceswap-key-24"
KEY = {"x-api-key": SECRET}
V3, V4 = "/api/open/v3", "/api/open/v4"
SUBMIT_MSG = (
    "Please be patient! If your results are not generated in three hours, please check your input image."
)
QUEUED, PROCESSING, VIDEO_PROCESSING = 10.0, 20.0, 30.0
DONE = QUEUED + VIDEO_PROCESSING


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_key=SECRET,
        client_id=CLIENT_ID,
        queued_seconds=QUEUED,
        processing_seconds=PROCESSING,
        video_processing_seconds=VIDEO_PROCESSING,
        max_listbyids=10,
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


def sample(server: EmulatorServer, name: str) -> str:
    return f"{server.url}/media/samples/{name}"


def face(server: EmulatorServer, name: str, index: int = 0) -> dict[str, str]:
    """``{path, opts}`` of face ``index`` of a sample, its opts as face detect gives them."""
    return {"path": sample(server, name), "opts": faces_for(sample(server, name))[index].landmarks_str}


def swap_body(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sourceImage": [face(server, "bob.jpg")],
        "targetImage": [face(server, "group-faces-1.jpg")],
        "face_enhance": 0,
        "modifyImage": sample(server, "group-faces-1.jpg"),
    }
    body.update(overrides)
    return body


def pro_body(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sourceImage": [{"path": sample(server, "alice.jpg")}],
        "targetImage": [{"path": sample(server, "bob.jpg")}],
    }
    body.update(overrides)
    return body


def reage_body(server: EmulatorServer) -> dict[str, Any]:
    return {
        "targetImage": [face(server, "faces-1.jpg")],
        "face_reage": 20,
        "modifyImage": sample(server, "faces-1.jpg"),
    }


def post(server: EmulatorServer, path: str, body: Any) -> dict[str, Any]:
    response = requests.post(f"{server.url}{path}", json=body, headers=KEY, timeout=10)
    assert response.status_code == 200
    reply: dict[str, Any] = response.json()
    return reply


def submitted(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["code"] == 1000, reply
    data: dict[str, Any] = reply["data"]
    return data


def specifyimage(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    return submitted(post(server, f"{V3}/faceswap/highquality/specifyimage", swap_body(server, **overrides)))


def pro(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    return submitted(post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server, **overrides)))


def listbyids(server: EmulatorServer, *ids: str) -> dict[str, dict[str, Any]]:
    response = requests.get(
        f"{server.url}{V3}/faceswap/result/listbyids", params={"_ids": ",".join(ids)}, headers=KEY, timeout=10
    )
    reply = response.json()
    assert reply["code"] == 1000, reply
    return {entry["_id"]: entry for entry in reply["data"]["result"]}


def rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def near(colour: tuple[int, ...], other: tuple[int, ...], tolerance: int = 12) -> bool:
    """Equal but for JPEG noise."""
    return all(abs(a - b) <= tolerance for a, b in zip(colour, other, strict=True))


def download(url: str) -> requests.Response:
    return requests.get(url, timeout=10)


# Submit replies -----------------------------------------------------------------------------------------
def test_image_face_swap_replies_as_reage_does_with_the_final_url(server: EmulatorServer) -> None:
    reply = post(server, f"{V3}/faceswap/highquality/specifyimage", swap_body(server))
    assert (reply["code"], reply["msg"]) == (1000, SUBMIT_MSG)
    data = reply["data"]
    assert set(data) == {"_id", "url", "job_id"}
    assert len(data["_id"]) == 24
    assert data["url"].endswith(f"/media/results/{data['_id']}.jpg")
    assert server.client.counts()["specifyimage"] == 1


def test_face_swap_pro_replies_without_a_url_and_listbyids_gives_it(server: EmulatorServer) -> None:
    reply = post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server))
    assert (reply["code"], reply["msg"]) == (1000, "OK")
    assert set(reply["data"]) == {"_id", "job_id"}
    job = reply["data"]
    server.client.advance_clock(QUEUED + PROCESSING)
    entry = listbyids(server, job["_id"])[job["_id"]]
    assert (entry["faceswap_status"], entry["job_id"]) == (3, job["job_id"])
    assert entry["url"].endswith(f"/media/results/{job['_id']}.jpg")
    assert download(entry["url"]).headers["content-type"] == "image/jpeg"
    assert server.client.counts()["faceswapByImage"] == 1


# Status, polling with reage, cancel ---------------------------------------------------------------------
def test_reage_and_every_face_swap_kind_are_polled_in_one_listbyids_round(server: EmulatorServer) -> None:
    reage = submitted(post(server, f"{V3}/faceswap/highquality/imgreage", reage_body(server)))
    image = specifyimage(server)
    video_body = swap_body(server, modifyVideo=sample(server, "clip.mp4"))
    del video_body["modifyImage"]
    video = submitted(post(server, f"{V3}/faceswap/highquality/specifyvideo", video_body))
    swap_pro = pro(server)
    ids = [reage["_id"], image["_id"], video["_id"], swap_pro["_id"], "0" * 24]

    assert {i: e["faceswap_status"] for i, e in listbyids(server, *ids).items()} == dict.fromkeys(ids[:4], 1)
    server.client.advance_clock(QUEUED)
    assert {i: e["faceswap_status"] for i, e in listbyids(server, *ids).items()} == dict.fromkeys(ids[:4], 2)
    server.client.advance_clock(PROCESSING)
    after_image = {i: e["faceswap_status"] for i, e in listbyids(server, *ids).items()}
    assert after_image == {ids[0]: 3, ids[1]: 3, ids[2]: 2, ids[3]: 3}, "the video takes longer"
    server.client.advance_clock(VIDEO_PROCESSING)
    entries = listbyids(server, *ids)
    assert {i: e["faceswap_status"] for i, e in entries.items()} == dict.fromkeys(ids[:4], 3)
    assert entries[video["_id"]]["faceswap_type"] == 2
    assert entries[image["_id"]]["faceswap_type"] == 1
    assert server.client.ledger()["listbyids_ids"][-1] == ids, "one request asked for all of them"

    video_result = download(entries[video["_id"]]["url"])
    assert video_result.headers["content-type"] == "video/mp4"
    assert video_result.content.startswith(MP4_HEADER)


def test_job_del_cancels_face_swap_jobs_by_job_id_in_one_comma_list(server: EmulatorServer) -> None:
    image, swap_pro, other = specifyimage(server), pro(server), specifyimage(server)
    reply = post(server, f"{V3}/faceswap/job/del", {"job_ids": f"{image['job_id']},{swap_pro['job_id']}"})
    assert reply["code"] == 1000
    server.client.advance_clock(DONE)
    statuses = {
        i: e["faceswap_status"]
        for i, e in listbyids(server, image["_id"], swap_pro["_id"], other["_id"]).items()
    }
    assert statuses == {image["_id"]: 4, swap_pro["_id"]: 4, other["_id"]: 3}
    assert download(f"{server.url}/media/results/{image['_id']}.jpg").status_code == 404


def test_a_fail_marker_on_a_source_face_fails_the_swap(server: EmulatorServer) -> None:
    job = specifyimage(server, sourceImage=[face(server, "alice-emulator-fail.jpg")])
    server.client.advance_clock(DONE)
    assert listbyids(server, job["_id"])[job["_id"]]["faceswap_status"] == 4


def test_each_kind_is_charged_its_price(server: EmulatorServer) -> None:
    start = server.client.account()["credit"]
    specifyimage(server)
    pro(server)
    assert start - server.client.account()["credit"] == 2 + 3


# The result ---------------------------------------------------------------------------------------------
def test_the_result_shows_the_source_face_where_the_target_face_was(server: EmulatorServer) -> None:
    target = faces_for(sample(server, "group-faces-1.jpg"))[0]
    source_skin, _ = looks_of("bob.jpg")
    target_skin, _ = looks_of("group-faces-1.jpg")
    assert source_skin != target_skin, "the test needs two people of different looks"
    job = specifyimage(server)
    server.client.advance_clock(DONE)
    first, second = download(job["url"]).content, download(job["url"]).content
    assert first == second
    image = Image.open(io.BytesIO(first)).convert("RGB")
    x, y, w, h = target.region
    # A cheek of the face: skin, not an eye, the nose or the mouth.
    cheek = rgb(image, (x + w * 3 // 10, y + h * 6 // 10))
    assert near(cheek, source_skin), (cheek, source_skin)
    assert not near(cheek, target_skin)

    before = Image.open(io.BytesIO(download(sample(server, "group-faces-1.jpg")).content)).convert("RGB")
    assert near(rgb(before, (x + w * 3 // 10, y + h * 6 // 10)), target_skin), (
        "the input showed the target's face"
    )
    # Outside the face the picture is the input's (JPEG noise aside).
    assert near(rgb(image, (2, 2)), rgb(before, (2, 2)))


def test_the_same_swap_renders_the_same_bytes_in_another_job(server: EmulatorServer) -> None:
    first, second = specifyimage(server), specifyimage(server)
    server.client.advance_clock(DONE)
    assert download(first["url"]).content == download(second["url"]).content


# Webhooks -----------------------------------------------------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as started:
        yield started


def wait_for(condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_face_swap_jobs_call_back_with_type_faceswap(
    server: EmulatorServer, receiver: CallbackReceiver
) -> None:
    image = specifyimage(server, webhookUrl=receiver.url)
    swap_pro = pro(server, webhookUrl=receiver.url)
    server.client.advance_clock(QUEUED + PROCESSING)
    wait_for(lambda: len(receiver.received()) >= 4, "four callbacks")
    verifier = AkoolWebhookVerifier(CLIENT_ID, SECRET)
    events = [verifier.verify(body) for body in receiver.received()]
    assert {event.type for event in events} == {"faceswap"}
    by_job = {(event.id, int(event.status)) for event in events}
    assert by_job == {(image["_id"], 2), (image["_id"], 3), (swap_pro["_id"], 2), (swap_pro["_id"], 3)}
    result_urls = {event.id: event.url for event in events if int(event.status) == 3}
    assert result_urls[image["_id"]] == image["url"]
    assert str(result_urls[swap_pro["_id"]]).endswith(f"{swap_pro['_id']}.jpg")


# Faults -------------------------------------------------------------------------------------------------
def test_faults_apply_to_the_face_swap_endpoints_as_to_reage(server: EmulatorServer) -> None:
    server.client.add_fault("code_1005", path="specifyimage")
    assert post(server, f"{V3}/faceswap/highquality/specifyimage", swap_body(server))["code"] == 1005
    server.client.add_fault("quota")
    assert post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server))["code"] == 1006
    server.client.add_fault("banned")
    assert post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server))["code"] == 1200
    server.client.add_fault("http_500", path="faceswapByImage", after=True)
    response = requests.post(
        f"{server.url}{V4}/faceswap/faceswapByImage", json=pro_body(server), headers=KEY, timeout=10
    )
    assert response.status_code == 500
    jobs = server.client.ledger()["jobs"]
    assert [job["kind"] for job in jobs.values()] == ["faceswapByImage"], (
        "the job exists though the reply was lost"
    )
    assert post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server))["code"] == 1000


def test_face_swap_needs_credentials(server: EmulatorServer) -> None:
    for path, body in (
        (f"{V3}/faceswap/highquality/specifyimage", swap_body(server)),
        (f"{V4}/faceswap/faceswapByImage", pro_body(server)),
    ):
        assert requests.post(f"{server.url}{path}", json=body, timeout=10).json()["code"] == 1102


# Validation ---------------------------------------------------------------------------------------------
def _param_error(reply: dict[str, Any], name: str) -> None:
    assert reply["code"] == 1003, reply
    assert name in reply["msg"], reply


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"sourceImage": None}, "sourceImage"),
        ({"sourceImage": []}, "sourceImage"),
        ({"targetImage": "x"}, "targetImage"),
        ({"sourceImage": [{"path": "not-a-url", "opts": "1,2:3,4:5,6:7,8"}]}, "sourceImage[0].path"),
        ({"targetImage": [{"path": "http://h/x.jpg"}]}, "targetImage[0].opts"),
        ({"sourceImage": [{"path": "http://h/x.jpg", "opts": "1,2:3,4"}]}, "sourceImage[0].opts"),
        ({"face_enhance": 2}, "face_enhance"),
        ({"face_enhance": "1"}, "face_enhance"),
        ({"modifyImage": None}, "modifyImage"),
        ({"webhookUrl": "ftp://h/x"}, "webhookUrl"),
    ],
)
def test_image_face_swap_refuses_bad_parameters_by_name(
    server: EmulatorServer, change: dict[str, Any], name: str
) -> None:
    _param_error(post(server, f"{V3}/faceswap/highquality/specifyimage", swap_body(server, **change)), name)
    assert server.client.ledger()["jobs"] == {}


def test_image_face_swap_pairs_must_match_and_are_at_most_eight(server: EmulatorServer) -> None:
    two = [face(server, "faces-2.jpg", 0), face(server, "faces-2.jpg", 1)]
    _param_error(
        post(server, f"{V3}/faceswap/highquality/specifyimage", swap_body(server, targetImage=two)),
        "sourceImage",
    )
    nine = [face(server, "faces-9.jpg", i) for i in range(9)]
    reply = post(
        server,
        f"{V3}/faceswap/highquality/specifyimage",
        swap_body(server, sourceImage=nine, targetImage=nine),
    )
    assert reply["code"] == 1007


@pytest.mark.parametrize("face_enhance", [0, 1, True, False, None])
def test_face_enhance_is_read_as_0_or_1_and_as_a_boolean(server: EmulatorServer, face_enhance: Any) -> None:
    body = swap_body(server, face_enhance=face_enhance)
    if face_enhance is None:
        del body["face_enhance"]
    assert post(server, f"{V3}/faceswap/highquality/specifyimage", body)["code"] == 1000


def test_video_face_swap_needs_modify_video(server: EmulatorServer) -> None:
    _param_error(post(server, f"{V3}/faceswap/highquality/specifyvideo", swap_body(server)), "modifyVideo")


def test_face_swap_pro_takes_opts_only_where_it_needs_them(server: EmulatorServer) -> None:
    # One pair: opts optional; the crop_landmarks reading (more than four points) is accepted too.
    long_opts = "1,2:3,4:5,6:7,8:9,10"
    assert pro(server, sourceImage=[{"path": sample(server, "alice.jpg"), "opts": long_opts}])
    two = [{"path": sample(server, "faces-2.jpg")}] * 2
    _param_error(
        post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server, sourceImage=two, targetImage=two)),
        "opts",
    )
    with_opts = [face(server, "faces-2.jpg", 0), face(server, "faces-2.jpg", 1)]
    assert pro(server, sourceImage=with_opts, targetImage=with_opts)
    many = [face(server, "faces-51.jpg", i) for i in range(51)]
    _param_error(
        post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server, sourceImage=many, targetImage=many)),
        "sourceImage",
    )
    _param_error(
        post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server, model_name="other")), "model_name"
    )
    _param_error(
        post(server, f"{V4}/faceswap/faceswapByImage", pro_body(server, single_face_mode="yes")),
        "single_face_mode",
    )
    _param_error(
        post(
            server,
            f"{V4}/faceswap/faceswapByImage",
            pro_body(server, sourceImage=with_opts, targetImage=with_opts[:1]),
        ),
        "sourceImage",
    )
