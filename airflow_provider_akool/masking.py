"""
Keep known secrets out of what a task returns and of the text of its validation errors.

A template can render a secret into any field (the API key pasted into ``output_path`` by mistake), and
that field then travels into the return value (XCom) or into a validation error's message. Airflow's own
secrets masker knows every secret registered with ``mask_secret`` in this process: the connection's password
once the connection was read (the hook registers it), and the tokens the hook obtained. Its ``redact`` is
used here, rather than matching of our own, so the same secrets are hidden as in the task log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar, cast

from airflow_provider_akool import exceptions

if TYPE_CHECKING:
    from airflow_provider_akool.hooks.akool import AkoolHook

log = logging.getLogger(__name__)

T = TypeVar("T")


def redact(value: T) -> T:
    """Return ``value`` (a string, or a JSON-like structure of them) with every known secret as ``***``."""
    # The module mask_secret itself writes to, on Airflow 3.1 as on 3.3.
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    return cast("T", airflow_redact(value))


def make_secret_known(hook: AkoolHook) -> None:
    """
    Read the hook's connection (a local lookup, no request to Akool), so its secret is known to the masker.

    Validation runs before any request, so before anything else read the connection: without this, the
    masker would not know the API key yet when a validation error quotes a field that contains it. A
    connection that cannot be read is left for the hook to report when it is used.
    """
    try:
        hook.settings  # noqa: B018 - read for its side effect: the hook registers the secret
    except Exception as error:
        log.debug("Could not read connection %s to learn its secret: %s", hook.akool_conn_id, type(error))


def redacted_error(error: exceptions.AkoolError) -> exceptions.AkoolError:
    """Return ``error`` itself when its message quotes no known secret, else a copy with the secret masked."""
    message = redact(error.message)
    if message == error.message:
        return error
    # The class, code and attributes as they were; only the text changes.
    state = {k: v for k, v in vars(error).items() if k not in ("message", "code", "endpoint")}
    return exceptions._rebuild(type(error), message, error.code, error.endpoint, redact(state))
