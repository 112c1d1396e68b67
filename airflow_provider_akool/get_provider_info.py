"""The provider's metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_akool.version import __version__

INTEGRATION = "Akool"
PACKAGE = "airflow_provider_akool"


def get_provider_info() -> dict[str, Any]:
    """Return what Airflow shows of this provider: its classes and the ``akool`` connection form."""
    return {
        "package-name": "airflow-provider-akool",
        "name": "Akool",
        "description": "Akool face re-age (image and video) and background change for Apache Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://docs.akool.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.hooks.akool"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{PACKAGE}.operators.reage",
                    f"{PACKAGE}.operators.faceswap",
                    f"{PACKAGE}.operators.background_change",
                    f"{PACKAGE}.operators.credit",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{PACKAGE}.sensors.reage",
                    f"{PACKAGE}.sensors.faceswap",
                    f"{PACKAGE}.sensors.background_change",
                    f"{PACKAGE}.sensors.image_result",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    f"{PACKAGE}.triggers.base",
                    f"{PACKAGE}.triggers.reage",
                    f"{PACKAGE}.triggers.image_result",
                ],
            }
        ],
        "extra-links": [f"{PACKAGE}.links.AkoolResultLink"],
        "config": {
            "akool": {
                "description": "Akool provider settings.",
                "options": {
                    "webhook_receiver": {
                        "description": (
                            "Mount the Akool webhook receiver on the API server at /akool-webhook, so "
                            'operators with webhook_url="airflow" are resumed by Akool\'s callbacks. Off: no '
                            "endpoint at all."
                        ),
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "webhook_base_url": {
                        "description": (
                            "The public URL Akool reaches Airflow's API server at (behind a reverse proxy); "
                            "empty: [api] base_url."
                        ),
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "https://airflow.example.com",
                        "default": "",
                    },
                    "webhook_resume_settle": {
                        "description": (
                            "Seconds after a task deferred before a callback may resume it: the worker that "
                            "deferred must have exited and the scheduler seen it, or the scheduler fails the "
                            "resumed task. A job finishing sooner is resumed this long after the deferral."
                        ),
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": "10",
                        "default": "10",
                    },
                    "triggerer_gc_freeze": {
                        "description": (
                            "Triggerer: when the first Akool wait polls, and again each time a poller's "
                            "waits have doubled, move the objects the process holds then out of Python's "
                            "garbage collector's scans (gc.freeze()), so a full collection with thousands "
                            "of waits stalls the event loop less. It changes the whole triggerer process, "
                            "so it is off by default; see docs/deployment.md for the measured trade-off."
                        ),
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "webhook_body_timeout": {
                        "description": (
                            "Seconds a request to the webhook receiver may take to send its body before it "
                            "is answered 408 (Akool sends its few hundred bytes at once). At most 60."
                        ),
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": "5",
                        "default": "5",
                    },
                },
            }
        },
        "connection-types": [
            {
                "hook-class-name": f"{PACKAGE}.hooks.akool.AkoolHook",
                "hook-name": "Akool",
                "connection-type": "akool",
                "conn-fields": {
                    "auth_type": {
                        "label": "Auth type",
                        # "auto" rather than an empty choice: the UI shows a null enum value as "null".
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["auto", "api_key", "bearer", "client_credentials"],
                            "default": "auto",
                        },
                        "description": (
                            "api_key sends the key as x-api-key; bearer sends it as Authorization: Bearer; "
                            "client_credentials exchanges Client ID and Client secret for a token; "
                            "auto: client_credentials when Client ID is set, else api_key."
                        ),
                    },
                    "detect_url": {
                        "label": "Face detect URL",
                        "schema": {"type": ["string", "null"], "format": "uri"},
                        "description": (
                            "Default https://sg3.akool.com/detect; with another host, <scheme>://<host>:<port>/detect."
                        ),
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "schema": {"type": ["number", "null"], "minimum": 1, "default": 30},
                        "description": "Per-request timeout in seconds.",
                    },
                },
                "ui-field-behaviour": {
                    # Host, scheme and port each in its own field: the UI's Test button sends the stored
                    # port back and Airflow 3.3.1-3.3.2 refuse the test when a connection has none
                    # (apache/airflow#73298), so the form must let users fill it in. A whole base URL in
                    # Host still works.
                    "hidden-fields": ["extra"],
                    "relabeling": {
                        "host": "Host (or base URL)",
                        "schema": "Scheme",
                        # Airflow 3.1's form labels an unrelabelled field with its key ("port").
                        "port": "Port",
                        "login": "Client ID (optional)",
                        "password": "API key / Client secret",
                    },
                    "placeholders": {
                        "host": "openapi.akool.com",
                        "schema": "https",
                        "port": "443",
                        "login": "only for client_credentials: your Akool clientId",
                        "password": "your Akool API key (the clientSecret when Client ID is set)",
                        "detect_url": "https://sg3.akool.com/detect",
                        "timeout": "30",
                    },
                },
            }
        ],
    }
