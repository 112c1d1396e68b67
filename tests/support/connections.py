"""The emulator's credentials and the ids of the connections the fixtures of ``tests/conftest.py`` define."""

from __future__ import annotations

from collections.abc import Callable

#: The API key (and client secret) the session's emulator accepts.
API_KEY = "emulator-api-key-0123456789"
#: The clientId of the emulator's token exchange.
CLIENT_ID = "emulator-client-id"
#: The ``aws`` connection to the local S3 server (the ``s3`` fixture).
S3_CONN_ID = "moto_s3"

#: ``akool_connection(conn_id="akool_default", **fields)``: defines a connection, returns its id.
ConnectionFactory = Callable[..., str]
