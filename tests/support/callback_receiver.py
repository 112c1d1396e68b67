"""
A webhook receiver on 127.0.0.1 that records what Akool (the emulator) POSTs, for the emulator's tests of
its callbacks (``tests/emulator/test_webhooks.py``, ``tests/emulator/test_faceswap.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The longest a held answer waits for its release.
HOLD_SECONDS = 10.0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # an emulator that stopped mid-delivery leaves a broken pipe behind: expected here


class CallbackReceiver:
    """
    A webhook receiver on 127.0.0.1: records each POST and answers with the next scripted status (then 200).

    :param script: the HTTP statuses of the first answers.
    :param delay: seconds to wait before answering.
    :param hold: when given, each answer waits until it is set (after ``delay``).
    """

    def __init__(
        self, script: list[int] | None = None, delay: float = 0.0, hold: threading.Event | None = None
    ) -> None:
        self.script = list(script or [])
        self.delay = delay
        self.hold = hold
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.bodies.append(body)
                    status = receiver.script.pop(0) if receiver.script else 200
                time.sleep(receiver.delay)
                if receiver.hold is not None:
                    receiver.hold.wait(HOLD_SECONDS)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined by server_close(), so a test leaves no thread behind.
        self.server.daemon_threads = False
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/akool/webhook"

    def received(self) -> list[bytes]:
        with self.lock:
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> CallbackReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What the ``receiver`` fixture of test_webhooks.py gives: ``receiver(script=[500], delay=0)`` starts one.
StartReceiver = Callable[..., CallbackReceiver]
