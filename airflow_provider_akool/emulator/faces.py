"""Deterministic fake faces: the same URL always yields the same landmarks, and samples draw them."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_SIZE = (512, 512)
MAX_SAMPLE_SIDE = 4096
MAX_FACES = 64

_FACES = re.compile(r"faces-(\d+)")
_SIZE = re.compile(r"(?<![0-9])(\d{2,4})x(\d{2,4})(?![0-9])")

# Landmark positions as fractions of the face box: eyes, nose, mouth (the four of landmarks_str, the
# order of the seed's opts), then the mouth corners.
_LANDMARKS = ((0.32, 0.38), (0.68, 0.38), (0.5, 0.58), (0.5, 0.78), (0.36, 0.76), (0.64, 0.76))


@dataclass(frozen=True)
class Face:
    """
    One fake face.

    :param region: ``[x, y, w, h]`` of the face box.
    :param landmarks: Six ``[x, y]`` points: left eye, right eye, nose, mouth, mouth corners.
    """

    region: tuple[int, int, int, int]
    landmarks: tuple[tuple[int, int], ...]

    @property
    def landmarks_str(self) -> str:
        """The first four points as ``x1,y1:x2,y2:x3,y3:x4,y4`` (what reage calls ``opts``)."""
        return ":".join(f"{x},{y}" for x, y in self.landmarks[:4])


def face_count(key: str) -> int:
    """Faces named by a ``faces-N`` marker (capped at 64), else 0 for a product (see product_of), else 1."""
    match = _FACES.search(key)
    if match:
        return min(int(match.group(1)), MAX_FACES)
    return 0 if product_of(key) else 1


def product_of(name: str) -> str | None:
    """The product a sample name stands for (``bottle``, ``shoe``, ``mug``, ``lamp``), else None."""
    lowered = name.lower()
    if "faces-" in lowered:
        return None
    for word, product in (
        ("bottle", "bottle"),
        ("sneaker", "shoe"),
        ("shoe", "shoe"),
        ("mug", "mug"),
        ("lamp", "lamp"),
    ):
        if word in lowered:
            return product
    if "product" in lowered:
        # A generic product: one of the four, the same for the same name.
        return ("bottle", "shoe", "mug", "lamp")[hashlib.sha256(name.encode()).digest()[0] % 4]
    return None


def image_size(key: str) -> tuple[int, int]:
    """The size a URL names with a ``WxH`` marker (e.g. ``portrait-640x480.jpg``), else 512x512."""
    match = _SIZE.search(key)
    if match is None:
        return DEFAULT_SIZE
    width, height = (min(max(int(v), 16), MAX_SAMPLE_SIDE) for v in match.groups())
    return width, height


def layout(key: str, width: int, height: int, count: int) -> list[Face]:
    """
    Place ``count`` faces on a grid over a ``width`` x ``height`` image, jittered by a hash of ``key``.

    :param key: What identifies the image (its URL, or a digest of inline data).
    """
    if count <= 0:
        return []
    seed = hashlib.sha256(key.encode()).digest()
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    cell_w, cell_h = width / cols, height / rows
    faces = []
    for index in range(count):
        col, row = index % cols, index // cols
        side = 0.6 * min(cell_w, cell_h)
        # Two hash bytes per face shift it by up to 10% of the cell, so faces differ between images.
        jx = (seed[(2 * index) % len(seed)] / 255 - 0.5) * 0.2 * cell_w
        jy = (seed[(2 * index + 1) % len(seed)] / 255 - 0.5) * 0.2 * cell_h
        left = col * cell_w + (cell_w - side) / 2 + jx
        top = row * cell_h + (cell_h - side) / 2 + jy
        points = tuple((round(left + fx * side), round(top + fy * side)) for fx, fy in _LANDMARKS)
        faces.append(Face((round(left), round(top), round(side), round(side)), points))
    return faces


SAMPLES_PATH = "/media/samples/"


def face_from_opts(opts: str) -> Face | None:
    """
    The face whose ``landmarks_str`` is ``opts`` (eyes, nose, mouth), its box derived as :func:`layout` places
    the points; None when the points give no face (eyes not left to right).
    """
    try:
        points = [tuple(int(v) for v in pair.split(",")) for pair in opts.split(":")[:4]]
    except ValueError:
        return None
    if len(points) < 4 or any(len(point) != 2 for point in points):
        return None
    (lx, ly), (rx, _), _, _ = points
    side = (rx - lx) / (_LANDMARKS[1][0] - _LANDMARKS[0][0])
    if side < 4:
        return None
    left, top = lx - _LANDMARKS[0][0] * side, ly - _LANDMARKS[0][1] * side
    corners = tuple((round(left + fx * side), round(top + fy * side)) for fx, fy in _LANDMARKS[4:])
    return Face((round(left), round(top), round(side), round(side)), (*points, *corners))  # type: ignore[arg-type]


def face_key(url: str) -> str:
    """
    What the faces of ``url`` derive from: a sample's name for the emulator's own samples (so the drawn
    sample and the detected landmarks agree whatever host and port served it), else the whole URL.
    """
    path = urlsplit(url).path
    if path.startswith(SAMPLES_PATH):
        return unquote(path[len(SAMPLES_PATH) :])
    return url


def faces_for(url: str) -> list[Face]:
    """The fake faces of the image at ``url``, using its ``faces-N`` and ``WxH`` markers."""
    key = face_key(url)
    width, height = image_size(key)
    return layout(key, width, height, face_count(key))
