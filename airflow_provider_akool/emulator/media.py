"""
Bytes the emulator serves: sample inputs, reage placeholders and deterministic download payloads.

Pillow is optional (the ``emulator`` extra) and imported lazily; without it every image is a solid-colour
PNG written with :mod:`zlib`.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

from airflow_provider_akool.emulator.faces import Face, face_count, image_size, layout

if TYPE_CHECKING:
    from PIL import Image as PILImage

CHUNK_SIZE = 64 * 1024
# A real MP4 starts with an ftyp box; clients that sniff the type see a plausible video.
MP4_HEADER = struct.pack(">I", 24) + b"ftypmp42" + struct.pack(">I", 0) + b"mp42isom"
SAMPLE_VIDEO_BYTES = 64 * 1024
IMAGE_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}

RGB = tuple[int, int, int]


def pillow_available() -> bool:
    """Whether Pillow can be imported (tests patch this to exercise the fallback)."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def pattern_block() -> bytes:
    """64 KiB of hash output; payload byte ``i`` is ``pattern_block()[i % 65536]``."""
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(CHUNK_SIZE // 32))


def payload(total: int, header: bytes = b"") -> Iterator[bytes]:
    """
    ``total`` deterministic bytes in chunks, never all in memory (a 300 MB result streams in 64 KiB pieces).

    :param header: Bytes that replace the start of the payload (e.g. :data:`MP4_HEADER`).
    """
    block = pattern_block()
    offset = 0
    while offset < total:
        size = min(CHUNK_SIZE, total - offset)
        chunk = block[:size]
        if offset == 0 and header:
            chunk = (header + chunk[len(header) :])[:size]
        offset += size
        yield chunk


def color_of(key: str) -> RGB:
    """A stable, mid-bright colour for ``key``."""
    digest = hashlib.sha256(key.encode()).digest()
    return (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)


def parse_hex_color(code: str | None, default: RGB = (255, 255, 255)) -> RGB:
    """``"#aafbe3"`` as an RGB tuple."""
    if not code:
        return default
    return (int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16))


def solid_png(width: int, height: int, color: RGB) -> bytes:
    """A valid RGB PNG of one colour, built with zlib row by row (the Pillow-less fallback)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(color) * width
    compressor = zlib.compressobj(6)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def encode(image: PILImage.Image, fmt: str) -> bytes:
    """Encode a Pillow image as ``jpg`` or ``png``."""
    out = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        image.convert("RGB").save(out, "JPEG", quality=85)
    else:
        # Low compression: result PNGs can be 3840x3840 and speed matters more than size here.
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _draw_faces(image: PILImage.Image, faces: list[Face], skin: RGB) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    for face in faces:
        x, y, w, h = face.region
        draw.ellipse(
            (x, y, x + w, y + h), fill=(*skin, 255), outline=(60, 40, 30, 255), width=max(1, w // 60)
        )
        dot = max(2, w // 16)
        (lx, ly), (rx, ry), (nx, ny), (mx, my), (ax, ay), (bx, by) = face.landmarks
        for ex, ey in ((lx, ly), (rx, ry)):
            draw.ellipse((ex - dot, ey - dot, ex + dot, ey + dot), fill=(30, 30, 30, 255))
        draw.line(((nx, ny - dot * 2), (nx, ny)), fill=(120, 70, 50, 255), width=max(1, dot // 2))
        draw.line(((ax, ay), (mx, my + dot // 2), (bx, by)), fill=(150, 40, 40, 255), width=max(1, dot // 2))


def sample_picture(name: str) -> PILImage.Image:
    """
    The sample image ``name`` as a Pillow RGBA image: its ``faces-N`` faces drawn exactly where face detect
    reports them, on a transparent background (so it also serves as a cut-out foreground).
    """
    from PIL import Image

    width, height = image_size(name)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    _draw_faces(image, layout(name, width, height, face_count(name)), skin=(236, 196, 160))
    return image


def sample_image(name: str, fmt: str) -> bytes:
    """The bytes of sample ``name`` as ``jpg`` (on a coloured background) or ``png`` (transparent)."""
    width, height = image_size(name)
    background = color_of(name)
    if not pillow_available():
        return solid_png(width, height, background)
    from PIL import Image

    picture = sample_picture(name)
    if fmt == "png":
        return encode(picture, "png")
    canvas = Image.new("RGBA", picture.size, (*background, 255))
    canvas.alpha_composite(picture)
    return encode(canvas, "jpg")


def sample_video() -> Iterator[bytes]:
    """The bytes served for a ``.mp4`` sample (not a playable video)."""
    return payload(SAMPLE_VIDEO_BYTES, MP4_HEADER)


def placeholder_foreground(key: str, width: int, height: int) -> PILImage.Image:
    """A silhouette (head and shoulders) on transparency, for foregrounds the emulator cannot fetch."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    fill = (*color_of(key), 255)
    draw.ellipse((width * 0.3, height * 0.08, width * 0.7, height * 0.5), fill=fill)
    draw.rounded_rectangle((width * 0.1, height * 0.52, width * 0.9, height), radius=width // 8, fill=fill)
    return image


def _open_image(source: bytes | None) -> PILImage.Image | None:
    """``source`` as an RGBA Pillow image, or None when it is absent or not an image."""
    if not source:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(source))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return image.convert("RGBA")


def reage_image(face_reage: int, sample_name: str | None, source: bytes | None = None) -> tuple[bytes, str]:
    """
    The image reage result: the emulator cannot age a face, so it labels the input (the sample when the
    input was one of its own, the downloaded image when it fetched one, else a plain card) with
    ``reage +N (emulated)``.

    :return: The bytes and their media type (JPEG, or PNG without Pillow).
    """
    label = f"reage {face_reage:+d} (emulated)"
    if not pillow_available():
        return solid_png(256, 256, color_of(label)), "image/png"
    from PIL import Image, ImageDraw, ImageFont

    downloaded = _open_image(source)
    if sample_name is not None:
        picture = sample_picture(sample_name)
        image = Image.new("RGBA", picture.size, (*color_of(sample_name), 255))
        image.alpha_composite(picture)
    elif downloaded is not None:
        image = downloaded
    else:
        image = Image.new("RGBA", (512, 512), (*color_of(label), 255))
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, width // 20))
    band = max(20, height // 10)
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 200))
    draw.text((8, height - band + band // 6), label, fill=(255, 255, 255, 255), font=font)
    return encode(image, "jpg"), "image/jpeg"
