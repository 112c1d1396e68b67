"""
Akool's webhook callbacks, both sides of them; the public names are those of Akool's signature scheme.

``from airflow_provider_akool.webhook import AkoolWebhookVerifier`` is the documented way to check a
callback in a receiver of your own (docs/webhooks.md); every name that ``airflow_provider_akool.webhook`` had
when it was one module is still here. The modules, each named by the side it serves:

- :mod:`~airflow_provider_akool.webhook.signing`: Akool's scheme (signature, encryption, the event): used by
  the receiver, the emulator and users' receivers. Imports no Airflow.
- :mod:`~airflow_provider_akool.webhook.callback_url`: the task's side: the callback URL and token a
  submitting operator gives Akool, and the marks by which its trigger and the receiver agree on what it
  expects.
- :mod:`~airflow_provider_akool.webhook.receiver`: the API server's side: the FastAPI app and what a genuine
  callback does (resume the deferred task, or leave the final state for its trigger).

The Airflow plugin that mounts the receiver is :mod:`airflow_provider_akool.plugins.webhook_receiver`, a shell
that imports the receiver only when the API server asks for its app. The imports point one way:
plugin -> receiver -> callback_url, signing; operators and triggers -> callback_url.
"""

from __future__ import annotations

# Every public name of the scheme, listed once, in ``signing.__all__``.
from airflow_provider_akool.webhook.signing import *  # noqa: F403
from airflow_provider_akool.webhook.signing import __all__ as __all__
