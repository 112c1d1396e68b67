"""Background change: the seed's four combinations, validation, polling and the composed image."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer, compose, media
from tests.support.akool_replies import SEED_BG_SUBMIT

KEY = {"x-api-key": "emulator-api-key"}
API = "/api/open/v3/content/image"
TEMPLATE = "https://s3-alpha-sig.figma.com/img/dd86/048d/a2f66b5440ca0097162432cc5d420f31?Expires=1712534400"
ORIGIN = "https://drz0f01yeq1cx.cloudfront.net/1712132369637-69a946c0-b2a7-4fe6-92c8-2729b36cc13e-0183.png"
# The seed page's four combinations: template, colour, both, neither.
SEED_BODIES: list[dict[str, Any]] = [
    {
        "canvas_size": "3840x3840",
        "template_url": TEMPLATE,
        "modify_template_size": "3830x3830",
        "overlay_template_x": 5,
        "overlay_template_y": 5,
        "origin_img": ORIGIN,
        "modify_origin_img_size": "3830x2145",
        "overlay_origin_x": 5,
        "overlay_origin_y": 849,
    },
    {
        "color_code": "#c9aafb",
        "canvas_size": "3840x3840",
        "origin_img": ORIGIN,
        "modify_origin_img_size": "3060x3824",
        "overlay_origin_x": 388,
        "overlay_origin_y": 8,
    },
    {
        "color_code": "#aafbe3",
        "canvas_size": "3840x3840",
        "template_url": TEMPLATE,
        "modify_template_size": "3828x3828",
        "overlay_template_x": 2049,
        "overlay_template_y": -6,
        "origin_img": ORIGIN,
        "modify_origin_img_size": "3062x3828",
        "overlay_origin_x": -72,
        "overlay_origin_y": -84,
    },
    {
        "canvas_size": "3840x3840",
        "origin_img": ORIGIN,
        "modify_origin_img_size": "3060x3824",
        "overlay_origin_x": 388,
        "overlay_origin_y": 8,
    },
]
#: The seed page's bg/replace reply: the emulator's has the same fields, in order, of the same types.
SEED_SUBMIT_DATA: dict[str, Any] = SEED_BG_SUBMIT["data"]
SEED_INFO_KEYS = ["_id", *(k for k in SEED_SUBMIT_DATA if k != "_id"), "external_img", "image"]


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(queued_seconds=5, bg_processing_seconds=5)) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(server: EmulatorServer) -> None:
    server.client.reset()


def replace(server: EmulatorServer, body: Any) -> dict[str, Any]:
    reply: dict[str, Any] = requests.post(
        f"{server.url}{API}/bg/replace", json=body, headers=KEY, timeout=5
    ).json()
    return reply


def info(server: EmulatorServer, model_id: str | None) -> dict[str, Any]:
    params = {} if model_id is None else {"image_model_id": model_id}
    reply: dict[str, Any] = requests.get(
        f"{server.url}{API}/infobymodelid", params=params, headers=KEY, timeout=5
    ).json()
    return reply


def small(server: EmulatorServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "canvas_size": "64x48",
        "origin_img": "https://cdn.example/person.png",
        "modify_origin_img_size": "20x20",
        "overlay_origin_x": 30,
        "overlay_origin_y": 20,
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize("body", SEED_BODIES)
def test_seed_combinations_succeed_with_the_seed_reply(server: EmulatorServer, body: dict[str, Any]) -> None:
    reply = replace(server, body)
    assert reply["code"] == 1000
    assert reply["msg"] == "OK"
    data = reply["data"]
    assert list(data) == list(SEED_SUBMIT_DATA)
    for name, value in SEED_SUBMIT_DATA.items():
        assert type(data[name]) is type(value), name
    assert data["image_status"] == 1
    assert server.client.ledger()["jobs"][data["_id"]]["kind"] == "bg_replace"


def test_info_progresses_and_shows_the_image_on_success(server: EmulatorServer) -> None:
    _id = replace(server, small(server))["data"]["_id"]
    first = info(server, _id)
    assert first["code"] == 1000
    assert first["data"]["image_status"] == 1
    assert "image" not in first["data"]
    server.client.advance_clock(5)
    assert info(server, _id)["data"]["image_status"] == 2
    server.client.advance_clock(5)
    data = info(server, _id)["data"]
    assert list(data) == SEED_INFO_KEYS
    assert data["image_status"] == data["image_sub_status"] == 3
    assert data["image"] == f"{server.url}/media/results/{_id}.png"
    assert data["external_img"]
    assert data["error_reasons"] == []


@pytest.mark.parametrize("where", ["origin_img", "template_url"])
def test_fail_marker_gives_status_4_and_error_reasons(server: EmulatorServer, where: str) -> None:
    body = small(server, template_url="https://cdn.example/bg.png")
    body[where] = "https://cdn.example/emulator-fail.png"
    _id = replace(server, body)["data"]["_id"]
    server.client.advance_clock(10)
    data = info(server, _id)["data"]
    assert data["image_status"] == 4
    assert "image" not in data
    assert data["error_reasons"]
    assert data["error_reasons"][0]["code"] == 1206
    assert requests.get(f"{server.url}/media/results/{_id}.png", timeout=5).status_code == 404


def test_info_unknown_or_missing(server: EmulatorServer) -> None:
    assert info(server, "0123456789abcdef01234567")["code"] == 1008
    reply = info(server, None)
    assert reply["code"] == 1003
    assert "image_model_id" in reply["msg"]


def test_info_does_not_answer_for_reage_ids(server: EmulatorServer) -> None:
    body = {
        "targetImage": [{"path": "https://a/b.jpg", "opts": "1,2:3,4:5,6:7,8"}],
        "face_reage": 1,
        "modifyImage": "https://a/b.jpg",
    }
    reply = requests.post(
        f"{server.url}/api/open/v3/faceswap/highquality/imgreage", json=body, headers=KEY, timeout=5
    ).json()
    assert info(server, reply["data"]["_id"])["code"] == 1008


BAD = [
    ({"origin_img": None}, "origin_img"),
    ({"origin_img": "file:///etc/passwd"}, "origin_img"),
    ({"modify_origin_img_size": "20*20"}, "modify_origin_img_size"),
    ({"modify_origin_img_size": "0x20"}, "modify_origin_img_size"),
    ({"modify_origin_img_size": None}, "modify_origin_img_size"),
    ({"overlay_origin_x": "30"}, "overlay_origin_x"),
    ({"overlay_origin_y": None}, "overlay_origin_y"),
    ({"overlay_origin_y": 1.5}, "overlay_origin_y"),
    ({"canvas_size": "64"}, "canvas_size"),
    ({"canvas_size": "99999x10"}, "canvas_size"),
    ({"color_code": "red"}, "color_code"),
    ({"color_code": "#12345"}, "color_code"),
    ({"template_url": "nope"}, "template_url"),
    ({"modify_template_size": "10x10"}, "modify_template_size"),
    ({"overlay_template_x": 3}, "overlay_template_x"),
    ({"template_url": TEMPLATE, "overlay_template_y": "3"}, "overlay_template_y"),
    ({"template_url": TEMPLATE, "modify_template_size": "ax3"}, "modify_template_size"),
    ({"removeBg": "yes"}, "removeBg"),
    ({"webhookUrl": "nope"}, "webhookUrl"),
]


@pytest.mark.parametrize(("overrides", "name"), BAD)
def test_bad_parameters_are_1003_naming_the_parameter(
    server: EmulatorServer, overrides: dict[str, Any], name: str
) -> None:
    reply = replace(server, small(server, **overrides))
    assert reply["code"] == 1003
    assert reply["msg"].startswith(f"Parameter error: {name} ")


def test_optional_fields_accepted(server: EmulatorServer) -> None:
    reply = replace(
        server, small(server, removeBg=True, webhookUrl="http://localhost:3007/hook", color_code="#AABBCC")
    )
    assert reply["code"] == 1000
    assert server.client.ledger()["jobs"][reply["data"]["_id"]]["webhook_url"] == "http://localhost:3007/hook"


def download(server: EmulatorServer, body: dict[str, Any]) -> Image.Image:
    _id = replace(server, body)["data"]["_id"]
    url = f"{server.url}/media/results/{_id}.png"
    assert requests.get(url, timeout=5).status_code == 404
    server.client.advance_clock(10)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert int(response.headers["content-length"]) == len(response.content)
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image.convert("RGB")


def test_image_has_the_canvas_size_and_colour(server: EmulatorServer) -> None:
    image = download(server, small(server, color_code="#aafbe3"))
    assert image.size == (64, 48)
    assert image.getpixel((0, 0)) == (0xAA, 0xFB, 0xE3)
    assert image.getpixel((63, 0)) == (0xAA, 0xFB, 0xE3)


def test_no_colour_is_white_and_the_foreground_is_placed(server: EmulatorServer) -> None:
    image = download(server, small(server))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    # The placeholder silhouette's body fills the bottom middle of the 20x20 foreground at (30, 20).
    assert image.getpixel((40, 38)) != (255, 255, 255)


def test_template_is_placed_over_the_colour(server: EmulatorServer) -> None:
    body = small(
        server,
        color_code="#000000",
        template_url=TEMPLATE,
        modify_template_size="10x10",
        overlay_template_x=2,
        overlay_template_y=2,
    )
    image = download(server, body)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((3, 3)) != (0, 0, 0)
    assert image.getpixel((20, 20)) == (0, 0, 0)


def test_seed_size_with_a_sample_foreground(server: EmulatorServer) -> None:
    body = dict(SEED_BODIES[2], origin_img=f"{server.url}/media/samples/person-600x800.png")
    image = download(server, body)
    assert image.size == (3840, 3840)
    assert image.getpixel((3839, 3839)) == (0xAA, 0xFB, 0xE3)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_without_pillow_a_solid_png_of_the_canvas_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "pillow_available", lambda: False)
    monkeypatch.setattr(compose, "pillow_available", lambda: False)
    params = {"canvas_size": (30, 20), "color_code": "#102030"}
    data = compose.compose(params, {})
    assert png_size(data) == (30, 20)
    image = Image.open(io.BytesIO(data))
    assert image.getpixel((29, 19)) == (0x10, 0x20, 0x30)
    # The IDAT stream decompresses to exactly one filter byte plus three bytes per pixel per row.
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 20 * (1 + 30 * 3)
