"""The sample media the emulator serves (``/media/samples/<name>``): portraits, a video, a product image."""

from __future__ import annotations

from typing import Any


def sample(emulator: Any, name: str) -> str:
    """Return the URL of the emulator's sample ``name``."""
    return f"{emulator.url}/media/samples/{name}"


def small_background_change(emulator: Any) -> dict[str, Any]:
    """Return the parameters of a small background change of the sample product image (a plain colour)."""
    return {
        "origin_img": sample(emulator, "product.png"),
        "canvas_size": (64, 48),
        "modify_origin_img_size": "32x24",
        "overlay_origin_x": 8,
        "overlay_origin_y": 8,
        "color_code": "#c9aafb",
    }
