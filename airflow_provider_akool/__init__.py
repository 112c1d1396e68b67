"""Apache Airflow provider for Akool's face re-age and background-change APIs."""

from __future__ import annotations

from airflow_provider_akool.get_provider_info import get_provider_info
from airflow_provider_akool.version import __version__

__all__ = ["__version__", "get_provider_info"]
