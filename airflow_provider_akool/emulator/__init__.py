"""
A local emulator of the Akool Open API (reage, face swap, background change, face detect), for tests, the
demo and offline use. See ``docs/emulator.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_akool.emulator.app import create_app
    from airflow_provider_akool.emulator.client import EmulatorClient
    from airflow_provider_akool.emulator.config import EmulatorConfig
    from airflow_provider_akool.emulator.server import EmulatorServer

__all__ = ["EmulatorClient", "EmulatorConfig", "EmulatorServer", "create_app"]

# Resolved on first use, so that importing the package (the CLI's --help, or code that only needs
# EmulatorConfig) does not load FastAPI and uvicorn.
_EXPORTS = {
    "create_app": "airflow_provider_akool.emulator.app",
    "EmulatorClient": "airflow_provider_akool.emulator.client",
    "EmulatorConfig": "airflow_provider_akool.emulator.config",
    "EmulatorServer": "airflow_provider_akool.emulator.server",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
