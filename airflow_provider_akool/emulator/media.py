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
from typing import TYPE_CHECKING, Any

from airflow_provider_akool.emulator.faces import (
    Face,
    face_count,
    face_from_opts,
    image_size,
    layout,
    product_of,
)

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


# Skin tones and hair colours the samples' faces are drawn in, picked by a hash of the sample's name, so two
# samples show two different people and a swapped face is visibly another one.
SKIN_TONES: tuple[RGB, ...] = (
    (241, 204, 171),
    (224, 172, 130),
    (198, 134, 94),
    (141, 85, 54),
    (255, 219, 190),
)
HAIR_COLOURS: tuple[RGB, ...] = ((40, 28, 20), (92, 58, 33), (178, 128, 62), (214, 180, 110), (120, 40, 20))


def looks_of(key: str) -> tuple[RGB, RGB]:
    """The skin tone and hair colour of the person ``key`` (a sample name or URL) shows."""
    digest = hashlib.sha256(b"person:" + key.encode()).digest()
    return SKIN_TONES[digest[0] % len(SKIN_TONES)], HAIR_COLOURS[digest[1] % len(HAIR_COLOURS)]


def draw_face(image: PILImage.Image, face: Face, skin: RGB, hair: RGB) -> None:
    """A cartoon face in ``face.region``: hair, skin, eyes, nose and mouth exactly at its landmarks."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    x, y, w, h = face.region
    draw.ellipse((x, y, x + w, y + h), fill=(*skin, 255), outline=(60, 40, 30, 255), width=max(1, w // 60))
    # The hair: the top of a slightly taller ellipse, ending above the eyes (at 0.38 of the face).
    draw.chord((x - w * 0.04, y - h * 0.08, x + w * 1.04, y + h * 0.5), 180, 360, fill=(*hair, 255))
    dot = max(2, w // 16)
    (lx, ly), (rx, ry), (nx, ny), (mx, my), (ax, ay), (bx, by) = face.landmarks
    for ex, ey in ((lx, ly), (rx, ry)):
        draw.ellipse((ex - dot, ey - dot, ex + dot, ey + dot), fill=(30, 30, 30, 255))
    draw.line(((nx, ny - dot * 2), (nx, ny)), fill=(120, 70, 50, 255), width=max(1, dot // 2))
    draw.line(((ax, ay), (mx, my + dot // 2), (bx, by)), fill=(150, 40, 40, 255), width=max(1, dot // 2))


def draw_product(image: PILImage.Image, product: str, key: str) -> None:
    """Draw ``product`` (a cut-out on transparency) filling the middle of ``image``, coloured by ``key``."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    width, height = image.size
    # Not the colour of the sample's background (color_of(key)), so the product stands out on it.
    tint = color_of(f"product:{key}")
    colour = (*tint, 255)
    dark = (*(c // 2 for c in tint), 255)
    light = (255, 255, 255, 255)
    line = max(1, min(width, height) // 80)
    # The product's box: 70% of the smaller side, centred.
    side = min(width, height) * 0.7
    left, top = (width - side) / 2, (height - side) / 2

    def at(fx: float, fy: float) -> tuple[float, float]:
        return left + fx * side, top + fy * side

    if product == "bottle":
        draw.rounded_rectangle(
            (*at(0.3, 0.35), *at(0.7, 1.0)), radius=side * 0.08, fill=colour, outline=dark, width=line
        )
        draw.polygon([at(0.3, 0.4), at(0.42, 0.18), at(0.58, 0.18), at(0.7, 0.4)], fill=colour)
        draw.rectangle((*at(0.42, 0.06), *at(0.58, 0.2)), fill=colour, outline=dark, width=line)
        draw.rectangle((*at(0.4, 0.0), *at(0.6, 0.08)), fill=dark)
        draw.rectangle((*at(0.3, 0.55), *at(0.7, 0.8)), fill=light)
        draw.line((at(0.36, 0.64), at(0.64, 0.64)), fill=dark, width=line)
        draw.line((at(0.36, 0.71), at(0.56, 0.71)), fill=dark, width=line)
    elif product == "shoe":
        draw.polygon(
            [
                at(0.02, 0.55),
                at(0.05, 0.3),
                at(0.32, 0.28),
                at(0.45, 0.45),
                at(0.85, 0.55),
                at(0.98, 0.68),
                at(0.98, 0.78),
                at(0.02, 0.78),
            ],
            fill=colour,
            outline=dark,
        )
        draw.rectangle((*at(0.02, 0.78), *at(0.98, 0.86)), fill=light, outline=dark, width=line)
        for index in range(4):
            fx = 0.3 + index * 0.08
            draw.line(
                (at(fx, 0.38 + index * 0.03), at(fx + 0.06, 0.46 + index * 0.03)), fill=light, width=line * 2
            )
    elif product == "mug":
        draw.ellipse((*at(0.62, 0.35), *at(0.95, 0.75)), outline=colour, width=max(2, int(side * 0.07)))
        draw.rounded_rectangle(
            (*at(0.1, 0.2), *at(0.72, 0.95)), radius=side * 0.06, fill=colour, outline=dark, width=line
        )
        draw.ellipse((*at(0.1, 0.15), *at(0.72, 0.27)), fill=dark)
        draw.ellipse((*at(0.3, 0.45), *at(0.52, 0.67)), fill=light)
    else:  # lamp
        draw.polygon([at(0.3, 0.05), at(0.7, 0.05), at(0.85, 0.4), at(0.15, 0.4)], fill=colour, outline=dark)
        draw.rectangle((*at(0.47, 0.4), *at(0.53, 0.88)), fill=dark)
        draw.ellipse((*at(0.25, 0.85), *at(0.75, 0.98)), fill=dark)


def sample_picture(name: str) -> PILImage.Image:
    """
    The sample image ``name`` as a Pillow RGBA image on a transparent background (so it also serves as a
    cut-out foreground): a product when its name says one (see :func:`product_of`), else its ``faces-N`` faces
    drawn exactly where face detect reports them, each sample's people in their own skin tone and hair.
    """
    from PIL import Image

    width, height = image_size(name)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    product = product_of(name)
    if product is not None:
        draw_product(image, product, name)
        return image
    skin, hair = looks_of(name)
    for face in layout(name, width, height, face_count(name)):
        draw_face(image, face, skin, hair)
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


def _input_picture(sample_name: str | None, source: bytes | None, key: str) -> PILImage.Image:
    """What a job changes: its sample, else the downloaded image, else a plain card coloured by ``key``."""
    from PIL import Image

    if sample_name is not None:
        picture = sample_picture(sample_name)
        image = Image.new("RGBA", picture.size, (*color_of(sample_name), 255))
        image.alpha_composite(picture)
        return image
    downloaded = _open_image(source)
    if downloaded is not None:
        return downloaded
    return Image.new("RGBA", (512, 512), (*color_of(key), 255))


def _faces_in(image: PILImage.Image, opts: list[str | None], sample_name: str | None) -> list[Face]:
    """The faces ``opts`` name; without usable ``opts``, the sample's faces, else one in the middle."""
    faces = [face for face in (face_from_opts(o) for o in opts if o) if face is not None]
    if faces:
        return faces
    width, height = image.size
    if sample_name is not None and product_of(sample_name) is None:
        found = layout(sample_name, width, height, face_count(sample_name))
        if found:
            return found[: max(1, len(opts))]
    return layout("", width, height, 1)


def _caption(image: PILImage.Image, label: str) -> None:
    from PIL import ImageDraw, ImageFont

    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, width // 20))
    band = max(20, height // 10)
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 200))
    draw.text((8, height - band + band // 6), label, fill=(255, 255, 255, 255), font=font)


def _age(image: PILImage.Image, face: Face, years: int) -> None:
    """Older: grey hair and wrinkles, more lines the more years; younger: smoothed skin, rosy cheeks."""
    from PIL import Image, ImageDraw, ImageFilter

    x, y, w, h = face.region
    if w < 4 or h < 4:
        return
    strength = min(abs(years), 30) / 30
    if years > 0:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        grey = (200, 200, 200, int(120 + 135 * strength))
        draw.chord((x - w * 0.04, y - h * 0.08, x + w * 1.04, y + h * 0.5), 180, 360, fill=grey)
        line = max(1, w // 70)
        wrinkle = (90, 60, 45, 255)
        # Forehead lines between the eyebrows' height and the hair: the first low, more above it with age.
        for index in range(1 + round(3 * strength)):
            fy = y + h * (0.30 - 0.025 * index)
            draw.arc((x + w * 0.36, fy, x + w * 0.64, fy + h * 0.05), 200, 340, fill=wrinkle, width=line)
        (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
        for ex, ey, side in ((lx, ly, -1), (rx, ry, 1)):
            for index in range(1 + round(2 * strength)):
                ox = ex + side * w * 0.1
                draw.line(
                    ((ox, ey - h * 0.02 + index * h * 0.025), (ox + side * w * 0.06, ey + index * h * 0.035)),
                    fill=wrinkle,
                    width=line,
                )
        (ax, ay), (bx, by) = face.landmarks[4], face.landmarks[5]
        draw.line(((ax - w * 0.02, ay - h * 0.1), (ax - w * 0.05, ay + h * 0.02)), fill=wrinkle, width=line)
        draw.line(((bx + w * 0.02, by - h * 0.1), (bx + w * 0.05, by + h * 0.02)), fill=wrinkle, width=line)
        image.alpha_composite(overlay)
        return
    if years < 0:
        box = (max(0, x), max(0, y), min(image.width, x + w), min(image.height, y + h))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            return
        region = image.crop(box)
        smooth = region.filter(ImageFilter.GaussianBlur(radius=max(1.0, w / 80 * (0.5 + strength))))
        mask = Image.new("L", region.size, 0)
        ImageDraw.Draw(mask).ellipse((0, 0, region.width - 1, region.height - 1), fill=255)
        image.paste(smooth, box[:2], mask)
        draw = ImageDraw.Draw(image)
        blush = (240, 120, 120, 255)
        for cx, cy in ((x + w * 0.28, y + h * 0.6), (x + w * 0.72, y + h * 0.6)):
            r = w * 0.06
            draw.ellipse((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), fill=blush)


def reage_image(
    face_reage: int,
    sample_name: str | None,
    source: bytes | None = None,
    opts: list[str | None] | None = None,
) -> tuple[bytes, str]:
    """
    The image reage result: the input (the sample when it was one of the emulator's, the downloaded image when
    it fetched one, else a plain card) with each face the ``opts`` name aged (grey hair, wrinkles) or made
    younger (smoothed skin, rosy cheeks), and the caption ``reage +N (emulated)``.

    :return: The bytes and their media type (JPEG, or PNG without Pillow).
    """
    label = f"reage {face_reage:+d} (emulated)"
    if not pillow_available():
        return solid_png(256, 256, color_of(label)), "image/png"
    image = _input_picture(sample_name, source, label)
    for face in _faces_in(image, opts or [], sample_name):
        _age(image, face, face_reage)
    _caption(image, label)
    return encode(image, "jpg"), "image/jpeg"


def _source_face(sample_name: str | None, source: bytes | None, opts: str | None, key: str) -> PILImage.Image:
    """The face a swap puts in: cut from the source picture at ``opts`` (or its first face), else drawn."""
    from PIL import Image

    picture: PILImage.Image | None = None
    if sample_name is not None and product_of(sample_name) is None:
        picture = _input_picture(sample_name, None, key)
    elif sample_name is None:
        picture = _open_image(source)
    if picture is not None:
        face = face_from_opts(opts) if opts else None
        if face is None and sample_name is not None:
            found = layout(sample_name, picture.width, picture.height, face_count(sample_name))
            face = found[0] if found else None
        if face is not None:
            x, y, w, h = face.region
            return picture.crop((x, y, x + w, y + h))
        side = min(picture.size)
        return picture.crop(
            (
                (picture.width - side) // 2,
                (picture.height - side) // 2,
                (picture.width + side) // 2,
                (picture.height + side) // 2,
            )
        )
    # Nothing to cut from (an address the emulator does not fetch): the person the address stands for.
    drawn = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    draw_face(drawn, layout("", 256, 256, 1)[0], *looks_of(key))
    return drawn.crop((51, 51, 205, 205))


def faceswap_image(
    sample_name: str | None, source: bytes | None, pairs: list[dict[str, Any]]
) -> tuple[bytes, str]:
    """
    The image face swap result: the input with each target face replaced by its source face (cut out of
    the source picture, fitted into the target face's box through an oval mask), captioned
    ``face swap (emulated)``.

    :param pairs: One per swapped face: ``target_opts``, ``source_opts``, ``source_sample`` (the emulator
        sample the source is, if any), ``source_bytes`` (its download, if any) and ``source_key`` (its URL).
    :return: The bytes and their media type (JPEG, or PNG without Pillow).
    """
    label = f"face swap x{len(pairs)} (emulated)" if len(pairs) > 1 else "face swap (emulated)"
    if not pillow_available():
        return solid_png(256, 256, color_of(label)), "image/png"
    from PIL import Image, ImageDraw

    image = _input_picture(sample_name, source, label)
    targets = _faces_in(image, [pair.get("target_opts") for pair in pairs], sample_name)
    for pair, target in zip(pairs, targets, strict=False):
        x, y, w, h = target.region
        if w < 2 or h < 2:
            continue
        face = _source_face(
            pair.get("source_sample"),
            pair.get("source_bytes"),
            pair.get("source_opts"),
            str(pair.get("source_key", "")),
        ).resize((w, h))
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).ellipse((0, 0, w - 1, h - 1), fill=255)
        image.paste(face.convert("RGBA"), (x, y), mask)
    _caption(image, label)
    return encode(image, "jpg"), "image/jpeg"
