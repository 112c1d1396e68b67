"""Run the emulator under uvicorn in a background thread, for tests and the demo."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

from airflow_provider_akool.emulator.app import create_app
from airflow_provider_akool.emulator.client import EmulatorClient
from airflow_provider_akool.emulator.config import EmulatorConfig

if TYPE_CHECKING:
    from types import TracebackType

    from fastapi import FastAPI

    from airflow_provider_akool.emulator.state import EmulatorState

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """
    A bound, listening TCP socket; port 0 picks a free port, read back with ``getsockname()``.

    It listens at once, so a client that connects while uvicorn is still starting waits in the backlog
    instead of being refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restarted server take its old port back while the previous connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class EmulatorServer:
    """
    The emulator on a loopback port, served by uvicorn from a daemon thread.

    State (jobs, tokens, ledger) belongs to the instance and survives ``stop()``/``start()``; a restart
    reuses the same port, so clients keep their base URL.

    :param config: The settings; defaults to :class:`EmulatorConfig` ``()``.
    :param host: The interface to bind.
    :param port: The port; 0 picks a free one.
    :param log_level: uvicorn's log level.
    :param access_log: Whether uvicorn logs every request (off: tests stay quiet).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        access_log: bool = False,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.log_level = log_level
        self.access_log = access_log
        self.app: FastAPI = create_app(self.config)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def state(self) -> EmulatorState:
        """The live state, for white-box assertions (prefer :attr:`client` for black-box tests)."""
        state: EmulatorState = self.app.state.emulator
        return state

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the base URL for the API, detect and media."""
        if not self.port:
            raise RuntimeError("the server has not been started yet")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def client(self) -> EmulatorClient:
        """A control API client for this server."""
        return EmulatorClient(self.url)

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EmulatorServer:
        """Start serving; returns once the port accepts connections."""
        if self.running:
            return self
        sock = bind_socket(self.host, self.port)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # never reconfigure the host process's logging
            log_level=self.log_level,
            access_log=self.access_log,
            lifespan="on",  # the lifespan starts and stops the webhook sender
            ws="none",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"akool-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread; safe to call twice."""
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(STOP_TIMEOUT)
        if sock is not None:
            sock.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
