"""Deprecated: the background-change sensor is :mod:`airflow_provider_akool.sensors.background_change`."""

from __future__ import annotations

from typing import Any

from airflow_provider_akool.deprecation import warn_renamed
from airflow_provider_akool.sensors.background_change import AkoolBackgroundChangeSensor


class AkoolImageResultSensor(AkoolBackgroundChangeSensor):
    """Deprecated alias of :class:`~.background_change.AkoolBackgroundChangeSensor`."""

    def __init__(self, **kwargs: Any) -> None:
        warn_renamed("AkoolImageResultSensor", "AkoolBackgroundChangeSensor")
        super().__init__(**kwargs)


__all__ = ["AkoolImageResultSensor"]
