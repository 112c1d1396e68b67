"""The emulator's pictures show what they stand for: products are products, reage results show the change."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from airflow_provider_akool.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_akool.emulator.faces import Face, faces_for
from airflow_provider_akool.emulator.media import HAIR_COLOURS, SKIN_TONES, looks_of

KEY = {"x-api-key": "emulator-api-key"}
PORTRAIT = "portrait-faces-1.jpg"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(queued_seconds=0, processing_seconds=0)) as emulator:
        yield emulator


def picture(url: str) -> Image.Image:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content)).convert("RGBA")


def rgb(image: Image.Image, xy: tuple[float, float]) -> tuple[int, int, int]:
    value = image.getpixel((int(xy[0]), int(xy[1])))
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


def near(colour: tuple[int, ...], other: tuple[int, ...], tolerance: int = 14) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, other, strict=True))


def reaged(server: EmulatorServer, years: int) -> tuple[Image.Image, Image.Image, Face]:
    """The input picture, the reage result and the face, for ``years``."""
    url = f"{server.url}/media/samples/{PORTRAIT}"
    face = faces_for(url)[0]
    body: dict[str, Any] = {
        "targetImage": [{"path": url, "opts": face.landmarks_str}],
        "face_reage": years,
        "modifyImage": url,
    }
    reply = requests.post(
        f"{server.url}/api/open/v3/faceswap/highquality/imgreage", json=body, headers=KEY, timeout=10
    ).json()
    assert reply["code"] == 1000, reply
    return picture(url), picture(reply["data"]["url"]), face


def wrinkle_pixels(image: Image.Image, face: Face) -> int:
    """Pixels unlike the skin on the forehead (where wrinkles go: no eye, nose or hair)."""
    x, y, w, h = face.region
    skin, _ = looks_of(PORTRAIT)
    return sum(
        not near(rgb(image, (px, py)), skin, 40)
        for py in range(y + h * 25 // 100, y + h * 36 // 100)
        for px in range(x + w * 42 // 100, x + w * 58 // 100)
    )


def test_an_older_face_gets_grey_hair_and_wrinkles(server: EmulatorServer) -> None:
    before, after, face = reaged(server, 25)
    x, y, w, h = face.region
    hair_spot = (x + w / 2, y + h * 0.05)
    _, hair = looks_of(PORTRAIT)
    assert near(rgb(before, hair_spot), hair), "the input shows the person's own hair"
    r, g, b = rgb(after, hair_spot)
    assert max(r, g, b) - min(r, g, b) <= 30, f"grey hair, got {(r, g, b)}"
    assert not near((r, g, b), hair)
    assert wrinkle_pixels(before, face) == 0
    assert wrinkle_pixels(after, face) > 0


def test_more_years_draw_more_wrinkles(server: EmulatorServer) -> None:
    _, few, face = reaged(server, 5)
    _, many, _ = reaged(server, 30)
    assert wrinkle_pixels(many, face) > wrinkle_pixels(few, face) > 0


def test_a_younger_face_is_smoothed_and_gets_rosy_cheeks(server: EmulatorServer) -> None:
    before, after, face = reaged(server, -20)
    x, y, w, h = face.region
    cheek = (x + w * 0.28, y + h * 0.6)
    skin, _ = looks_of(PORTRAIT)
    assert near(rgb(before, cheek), skin)
    assert near(rgb(after, cheek), (240, 120, 120)), rgb(after, cheek)
    assert wrinkle_pixels(after, face) == 0, "no wrinkles when younger"


def test_the_same_reage_gives_the_same_bytes(server: EmulatorServer) -> None:
    _, first, _ = reaged(server, 12)
    _, second, _ = reaged(server, 12)
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize(
    "name", ["sneaker-640x480.png", "mug-480x640.png", "lamp.png", "bottle.png", "product.png"]
)
def test_product_samples_show_a_product_and_no_face(server: EmulatorServer, name: str) -> None:
    image = picture(f"{server.url}/media/samples/{name}")
    width, height = image.size
    pixels = [image.getpixel((px, py)) for px in range(0, width, 8) for py in range(0, height, 8)]
    opaque = [pixel[:3] for pixel in pixels if isinstance(pixel, tuple) and pixel[3] == 255]
    assert len(opaque) > (width // 8) * (height // 8) // 10, "the product fills a good part of the picture"
    assert image.getpixel((0, 0))[3] == 0, "a cut-out: transparent around the product"  # type: ignore[index]
    people = {*SKIN_TONES, *HAIR_COLOURS}
    assert not any(pixel in people for pixel in opaque), "no skin and no hair in a product photo"
    reply = requests.post(
        f"{server.url}/detect",
        json={"single_face": False, "image_url": f"{server.url}/media/samples/{name}"},
        timeout=5,
    ).json()
    assert reply["landmarks_str"] == []


def test_products_differ_from_each_other(server: EmulatorServer) -> None:
    shapes = {
        name: picture(f"{server.url}/media/samples/{name}").resize((64, 64)).getchannel("A").tobytes()
        for name in ("sneaker.png", "mug.png", "lamp.png", "bottle.png")
    }
    assert len(set(shapes.values())) == 4


def test_a_named_face_count_still_wins_over_a_product_word(server: EmulatorServer) -> None:
    assert len(faces_for(f"{server.url}/media/samples/product-faces-2.png")) == 2
