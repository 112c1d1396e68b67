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
from typing import TYPE_CHECKING, Any, TypeVar, cast

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


class LearnsSecretWhenRendered:
    """
    Operator mixin: read the connection as soon as the fields are rendered, before Airflow stores them.

    Airflow passes the rendered fields (what the UI shows) through the secrets masker right after rendering,
    before ``execute()`` reads the connection: a key rendered into a field by mistake would be stored as is.
    Rendering ends in ``_do_render_template_fields`` on the operator itself, for a plain task as for each map
    index of a mapped one (``MappedOperator`` does not call the operator's ``render_template_fields``), so
    the connection is read there, once the connection id itself is rendered. A private method of Airflow's
    templater: ``tests/reliability/test_secrets.py`` guards it on every Airflow version CI runs.
    """

    akool_conn_id: Any

    def _do_render_template_fields(
        self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: Any
    ) -> None:
        super()._do_render_template_fields(  # type: ignore[misc]
            parent, template_fields, context, jinja_env, seen_oids
        )
        if parent is self and isinstance(self.akool_conn_id, str) and self.akool_conn_id.strip():
            # Imported here: the HTTP clients are needed to run a task, not to parse a DAG file.
            from airflow_provider_akool.hooks.akool import AkoolHook

            make_secret_known(AkoolHook(self.akool_conn_id))


def redacted_error(error: exceptions.AkoolError) -> exceptions.AkoolError:
    """Return ``error`` itself when its message quotes no known secret, else a copy with the secret masked."""
    message = redact(error.message)
    if message == error.message:
        return error
    # The class, code and attributes as they were; only the text changes.
    state = {k: v for k, v in vars(error).items() if k not in ("message", "code", "endpoint")}
    return exceptions._rebuild(type(error), message, error.code, error.endpoint, redact(state))
