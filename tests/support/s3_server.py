"""
A real S3 API on loopback for the tests: moto's server in a process of its own, on 127.0.0.1.

A process, not moto's in-process thread: its request log (which prints every URL, signed ones included)
then stays out of the test's console, where the tests look for leaked signatures.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import requests

ACCESS_KEY = "AKIAMOTOLOCALTEST01"
SECRET_KEY = "moto-local-secret-key-0123456789abcdef"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalS3:
    """moto's S3 server on ``127.0.0.1``: :meth:`start`, :meth:`stop`, and a boto3 client to fill it."""

    def __init__(self) -> None:
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        """The endpoint URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers."""
        self.port = _free_port()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto's server exited ({self._process.returncode}); see {self._log.name}")
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto's server did not answer within {timeout} s; see {self._log.name}")

    def stop(self) -> None:
        """Stop the server (it was started by :meth:`start`, and only it is stopped)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        self._log.close()
        os.unlink(self._log.name)

    def client(self) -> Any:
        """A boto3 S3 client with the credentials the server's connection uses."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def connection(self, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> str:
        """The JSON of an ``aws`` Airflow connection to this server (for an ``AIRFLOW_CONN_*`` variable)."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": access_key,
                "password": secret_key,
                "extra": {"endpoint_url": self.url, "region_name": REGION},
            }
        )

    def enforce_credentials(self, enforced: bool) -> None:
        """Make the server check credentials (moto accepts any by default), or stop checking them."""
        response = requests.post(
            f"{self.url}/moto-api/reset-auth", data="0" if enforced else "inf", timeout=10
        )
        response.raise_for_status()
