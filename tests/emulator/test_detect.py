"""Face detect: deterministic fake faces, the faces-N marker, inline images and the newer endpoint."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from airflow_provider_akool.emulator import EmulatorServer

OPTS = re.compile(r"-?\d+,-?\d+(?::-?\d+,-?\d+){3}")


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as emulator:
        yield emulator


def detect(server: EmulatorServer, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = requests.post(f"{server.url}/detect", json=body, headers=headers or {}, timeout=5)
    assert response.status_code == 200
    reply: dict[str, Any] = response.json()
    return reply


@pytest.mark.parametrize(
    ("name", "count"), [("face.jpg", 1), ("faces-0.jpg", 0), ("faces-3.jpg", 3), ("faces-9.png", 9)]
)
def test_faces_marker_sets_the_number_of_faces(server: EmulatorServer, name: str, count: int) -> None:
    reply = detect(server, {"single_face": False, "image_url": f"{server.url}/media/samples/{name}"})
    assert reply["error_code"] == 0
    assert reply["error_msg"] == "SUCCESS"
    assert set(reply) == {
        "error_code",
        "error_msg",
        "landmarks",
        "landmarks_str",
        "region",
        "seconds",
        "trx_id",
    }
    assert len(reply["landmarks"]) == len(reply["landmarks_str"]) == len(reply["region"]) == count
    for landmarks, text, region in zip(
        reply["landmarks"], reply["landmarks_str"], reply["region"], strict=True
    ):
        assert len(landmarks) == 6
        assert all(len(point) == 2 for point in landmarks)
        assert OPTS.fullmatch(text)
        assert text == ":".join(f"{x},{y}" for x, y in landmarks[:4])
        assert len(region) == 4
    assert isinstance(reply["seconds"], float)
    assert isinstance(reply["trx_id"], str)


def test_single_face_returns_only_the_first(server: EmulatorServer) -> None:
    url = "https://cdn.example/group-faces-4.jpg"
    everyone = detect(server, {"single_face": False, "image_url": url})
    first = detect(server, {"single_face": True, "image_url": url})
    assert first["landmarks_str"] == everyone["landmarks_str"][:1]


def test_faces_are_deterministic_and_differ_between_urls(server: EmulatorServer) -> None:
    a1 = detect(server, {"image_url": "https://cdn.example/a.jpg"})
    a2 = detect(server, {"image_url": "https://cdn.example/a.jpg"})
    b = detect(server, {"image_url": "https://cdn.example/b.jpg"})
    assert a1["landmarks"] == a2["landmarks"]
    assert a1["trx_id"] != a2["trx_id"]
    assert a1["landmarks"] != b["landmarks"]


def test_sample_images_draw_the_detected_faces(server: EmulatorServer) -> None:
    url = f"{server.url}/media/samples/faces-2-300x200.jpg"
    reply = detect(server, {"image_url": url})
    image = Image.open(io.BytesIO(requests.get(url, timeout=5).content)).convert("RGB")
    assert image.size == (300, 200)
    for landmarks in reply["landmarks"]:
        eye = image.getpixel(tuple(landmarks[0]))
        assert isinstance(eye, tuple)
        assert max(eye) < 80  # the drawn eyes are dark


def test_inline_image(server: EmulatorServer) -> None:
    out = io.BytesIO()
    Image.new("RGB", (200, 100), (10, 20, 30)).save(out, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    reply = detect(server, {"single_face": True, "img": data_url})
    assert reply["error_code"] == 0
    (x, y, w, h) = reply["region"][0]
    assert x >= 0
    assert y >= 0
    assert x + w <= 200
    assert y + h <= 100


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"single_face": False}, "image_url or img"),
        ({"image_url": "not-a-url"}, "image_url"),
        ({"img": "data:text/plain;base64,aGk="}, "img"),
        ({"img": "data:image/png;base64,!!!"}, "img"),
        ({"img": "data:image/png;base64,aGVsbG8="}, "img"),
        ({"image_url": "https://a/b.jpg", "single_face": "yes"}, "single_face"),
        ([], "body"),
    ],
)
def test_bad_requests_are_detect_errors(server: EmulatorServer, body: Any, name: str) -> None:
    reply = detect(server, body)
    assert reply["error_code"] != 0
    assert name in reply["error_msg"]


def test_auth_is_optional_but_checked_when_present(server: EmulatorServer) -> None:
    body = {"image_url": "https://cdn.example/a.jpg"}
    assert detect(server, body, {"x-api-key": "emulator-api-key"})["error_code"] == 0
    assert detect(server, body, {"Authorization": "Bearer emulator-api-key"})["error_code"] == 0
    assert detect(server, body, {"x-api-key": "wrong"})["error_code"] == 1101
    assert detect(server, body, {"Authorization": "Bearer wrong"})["error_code"] == 1101


def test_newer_detect_faces_endpoint(server: EmulatorServer) -> None:
    url = f"{server.url}/media/samples/faces-2.jpg"
    legacy = detect(server, {"image_url": url})
    response = requests.post(
        f"{server.url}/interface/detect-api/detect_faces",
        json={"url": url, "single_face": False, "num_frames": 1, "return_face_url": False},
        timeout=5,
    )
    reply = response.json()
    assert reply["error_code"] == 0
    assert set(reply["faces_obj"]) == {"0"}
    assert reply["faces_obj"]["0"]["landmarks_str"] == legacy["landmarks_str"]
    video = requests.post(
        f"{server.url}/interface/detect-api/detect_faces",
        json={"url": f"{server.url}/media/samples/clip.mp4", "num_frames": 3},
        timeout=5,
    ).json()
    assert set(video["faces_obj"]) == {"0", "1", "2"}
    missing = requests.post(f"{server.url}/interface/detect-api/detect_faces", json={}, timeout=5).json()
    assert missing["error_code"] != 0
    assert "url" in missing["error_msg"]
