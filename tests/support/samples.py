"""The sample media the emulator serves (``/media/samples/<name>``): portraits, a video, a product image."""

from __future__ import annotations

from typing import Any


def sample(emulator: Any, name: str) -> str:
    """Return the URL of the emulator's sample ``name``."""
    return f"{emulator.url}/media/samples/{name}"
