"""
The Airflow plugin that mounts the Akool webhook receiver on the API server, at ``/akool-webhook``.

Only the shell Airflow loads (by the ``airflow.plugins`` entry point, in every component): the receiver
itself, its FastAPI app and what a callback does, is :mod:`airflow_provider_akool.webhook.receiver`, imported
only when the API server reads ``fastapi_apps`` and ``[akool] webhook_receiver`` is true. Off (the default),
the plugin adds no endpoint at all. Nothing in the package imports this module.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_akool.webhook.callback_url import URL_PREFIX


def receiver_enabled() -> bool:
    """Whether ``[akool] webhook_receiver`` switches the receiver on (off by default)."""
    from airflow.providers.common.compat.sdk import conf

    return conf.getboolean("akool", "webhook_receiver", fallback=False)


def _fastapi_apps() -> list[dict[str, Any]]:
    if not receiver_enabled():
        return []
    # FastAPI resolves the handlers' annotations from the app module's globals, so that module imports
    # FastAPI at its top: only the API server, with the receiver switched on, imports it.
    from airflow_provider_akool.webhook.receiver import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Akool webhook receiver"}]


class _AppsOnDemand:
    """``fastapi_apps``, built when read (by the API server), on the class as on an instance."""

    def __get__(self, instance: object, owner: type | None = None) -> list[dict[str, Any]]:
        return _fastapi_apps()


class AkoolWebhookPlugin(AirflowPlugin):
    """Mount the Akool webhook receiver on the API server when ``[akool] webhook_receiver`` is true."""

    name = "akool_webhook"
    # Built when the API server asks, as the views plugin does: every other component that loads plugins
    # (scheduler, triggerer, workers) neither reads the setting nor imports FastAPI for it.
    fastapi_apps = _AppsOnDemand()
