"""Objects in the loopback S3 server's input bucket, for the tests of object-storage inputs."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from tests.support.connections import S3_CONN_ID

BUCKET = "akool-inputs"


def make_bucket(s3: Any) -> Any:
    """The S3 client of the ``s3`` fixture, with the input bucket made (the ``bucket`` fixture)."""
    client = s3.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    return client


def put(client: Any, data: bytes, suffix: str = ".jpg") -> str:
    """Upload ``data`` under a fresh key; return its URI with the connection id."""
    key = f"in/{uuid.uuid4().hex}{suffix}"
    client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{S3_CONN_ID}@{BUCKET}/{key}"
