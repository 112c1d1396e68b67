"""Background change for real: a canvas of ``canvas_size`` with colour, template and foreground placed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_akool.emulator.media import (
    color_of,
    encode,
    parse_hex_color,
    pillow_available,
    placeholder_foreground,
    sample_picture,
    solid_png,
)

if TYPE_CHECKING:
    from PIL import Image as PILImage


def _layer(url: str, size: tuple[int, int], sample_name: str | None, template: bool) -> PILImage.Image:
    from PIL import Image, ImageDraw

    if sample_name is not None:
        source = sample_picture(sample_name)
        if template:
            # A template is a background: give the transparent sample an opaque colour behind it.
            backdrop = Image.new("RGBA", source.size, (*color_of(sample_name), 255))
            backdrop.alpha_composite(source)
            source = backdrop
        return source.resize(size)
    if not template:
        return placeholder_foreground(url, *size)
    # An unreachable template becomes a striped rectangle, visibly different from a plain colour.
    image = Image.new("RGBA", size, (*color_of(url), 255))
    draw = ImageDraw.Draw(image)
    width, height = size
    step = max(8, min(width, height) // 12)
    for offset in range(-height, width, step * 2):
        draw.line(((offset, 0), (offset + height, height)), fill=(255, 255, 255, 90), width=max(1, step // 2))
    return image


def compose(params: dict[str, Any], sample_names: dict[str, str | None]) -> bytes:
    """
    Render the PNG of a background change job.

    :param params: The validated ``bg/replace`` parameters.
    :param sample_names: For ``origin_img`` and ``template_url``, the emulator sample they point to, if any.
    """
    canvas_w, canvas_h = params["canvas_size"]
    background = parse_hex_color(params.get("color_code"))
    if not pillow_available():
        return solid_png(canvas_w, canvas_h, background)
    from PIL import Image

    canvas = Image.new("RGBA", (canvas_w, canvas_h), (*background, 255))
    template_url = params.get("template_url")
    if template_url:
        size = params.get("modify_template_size") or (canvas_w, canvas_h)
        layer = _layer(template_url, size, sample_names.get("template_url"), template=True)
        canvas.paste(layer, (params["overlay_template_x"], params["overlay_template_y"]), layer)
    foreground = _layer(
        params["origin_img"], params["modify_origin_img_size"], sample_names.get("origin_img"), template=False
    )
    canvas.paste(foreground, (params["overlay_origin_x"], params["overlay_origin_y"]), foreground)
    return encode(canvas.convert("RGB"), "png")
