"""Injected faults: what can go wrong between a client and Akool, queued in the order they were set."""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_akool.emulator.ledger import OPEN_API_ENDPOINTS, OPEN_API_V4_ENDPOINTS, SUBMIT_ENDPOINTS

FAULT_KINDS = (
    "http_500",
    "drop",
    "slow",
    "code_1005",
    "http_429",
    "not_json",
    "missing_fields",
    "expire_tokens",
    "banned",
    "quota",
    "code",
    "oversized",
)
DROP_MODES = ("close", "reset", "mid_body")
#: The default body of ``oversized``: the 20 MB reply of issue 10.
DEFAULT_OVERSIZED_BYTES = 20 * 1024 * 1024
MAX_OVERSIZED_BYTES = 1 << 30
# Kinds that may let the endpoint run first, so the job exists although the client never sees the reply.
AFTER_KINDS = ("http_500", "drop", "not_json", "missing_fields")


@dataclass
class Fault:
    """
    One queued fault.

    :param kind: One of :data:`FAULT_KINDS`.
    :param count: How many matching requests it affects; ``None`` until cleared.
    :param path: Substring the request path must contain; ``None`` matches every non-control path.
    :param status: HTTP status of ``http_500`` (500 to 599).
    :param seconds: Delay of ``slow``.
    :param retry_after: ``Retry-After`` seconds of ``http_429``.
    :param mode: How ``drop`` ends the connection: ``close`` (FIN before any byte), ``reset`` (RST before any
        byte) or ``mid_body`` (the real headers and part of the body, then FIN).
    :param after: For :data:`AFTER_KINDS`: run the endpoint first (a submit creates its job), then fail.
    :param code: The business code of ``code`` (any but 1000): ``{"code", "msg", "data": null}``.
    :param size: Body bytes of ``oversized``; ``None`` streams without end (until the client goes away).
    :param length: Whether ``oversized`` announces its size in ``Content-Length`` (else chunked).
    """

    kind: str
    count: int | None = 1
    path: str | None = None
    status: int = 500
    seconds: float = 1.0
    retry_after: int = 1
    mode: str = "close"
    after: bool = False
    code: int = 1003
    size: int | None = DEFAULT_OVERSIZED_BYTES
    length: bool = False
    id: int = 0

    def applies_to(self, path: str, endpoint: str) -> bool:
        """Whether a request to ``path`` (ledger name ``endpoint``) is affected."""
        if self.path is not None and self.path not in path:
            return False
        if self.kind == "banned":
            return endpoint in OPEN_API_ENDPOINTS.values() or endpoint in OPEN_API_V4_ENDPOINTS.values()
        if self.kind == "quota":
            return endpoint in SUBMIT_ENDPOINTS
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as listed by the control API."""
        return asdict(self)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}]")
    return float(value)


def parse_fault(body: Any) -> Fault:
    """Validate a ``POST /_emulator/faults`` body; raises ``ValueError`` with a readable reason."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    count = body.get("count", 1)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer or null (until cleared)")
    path = body.get("path")
    if path is not None and not isinstance(path, str):
        raise ValueError("path must be a string")
    mode = body.get("mode", "close")
    if mode not in DROP_MODES:
        raise ValueError(f"mode must be one of {', '.join(DROP_MODES)}")
    after = body.get("after", False)
    if not isinstance(after, bool) or (after and kind not in AFTER_KINDS):
        raise ValueError(f"after must be a boolean, and true only for {', '.join(AFTER_KINDS)}")
    code = body.get("code", 1003)
    if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 99999 or code == 1000:
        raise ValueError("code must be an integer business code other than 1000")
    size = body.get("size", DEFAULT_OVERSIZED_BYTES)
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= MAX_OVERSIZED_BYTES
    ):
        raise ValueError(f"size must be an integer in [64, {MAX_OVERSIZED_BYTES}] or null (without end)")
    length = body.get("length", False)
    if not isinstance(length, bool) or (length and size is None):
        raise ValueError("length must be a boolean, and true only with a size")
    return Fault(
        kind=kind,
        code=code,
        size=size,
        length=length,
        count=count,
        path=path,
        status=int(_number(body, "status", 500, 500, 599)),
        seconds=_number(body, "seconds", 1.0, 0, 3600),
        retry_after=int(_number(body, "retry_after", 1, 0, 86400)),
        mode=mode,
        after=after,
    )


class FaultQueue:
    """Thread-safe ordered faults; each request takes at most one, the first that matches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, fault: Fault) -> Fault:
        """Queue ``fault`` behind those already set."""
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def take(self, path: str, endpoint: str) -> Fault | None:
        """The first fault matching the request, using up one of its count."""
        with self._lock:
            for fault in self._faults:
                if fault.applies_to(path, endpoint):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        """The queued faults, in order."""
        with self._lock:
            return [fault.to_dict() for fault in self._faults]
