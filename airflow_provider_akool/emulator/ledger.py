"""What the emulator saw: per-endpoint counts and one entry per request, never a credential."""

from __future__ import annotations

import copy
import threading
from collections import deque
from typing import Any

OPEN_API_PREFIX = "/api/open/v3/"
#: Face Swap Pro lives under v4.
OPEN_API_V4_PREFIX = "/api/open/v4/"

# Path (without the /api/open/v3/ prefix) -> ledger endpoint name.
OPEN_API_ENDPOINTS: dict[str, str] = {
    "getToken": "getToken",
    "faceswap/highquality/imgreage": "imgreage",
    "faceswap/highquality/vidreage": "vidreage",
    "faceswap/highquality/specifyimage": "specifyimage",
    "faceswap/highquality/specifyvideo": "specifyvideo",
    "faceswap/result/listbyids": "listbyids",
    "faceswap/job/del": "job_del",
    "content/image/bg/replace": "bg_replace",
    "content/image/infobymodelid": "infobymodelid",
    "faceswap/quota/info": "quota_info",
}
# The same under the v4 prefix.
OPEN_API_V4_ENDPOINTS: dict[str, str] = {"faceswap/faceswapByImage": "faceswapByImage"}
SUBMIT_ENDPOINTS = frozenset(
    {"imgreage", "vidreage", "bg_replace", "specifyimage", "specifyvideo", "faceswapByImage"}
)
ENDPOINTS = (*OPEN_API_ENDPOINTS.values(), *OPEN_API_V4_ENDPOINTS.values(), "detect", "detect_faces", "media")

# A long-running CLI emulator must not grow without bound; tests never get near this.
MAX_ENTRIES = 10_000


def endpoint_for(path: str) -> str | None:
    """The ledger name of a request path, ``"unknown"`` for other paths, ``None`` for the control API."""
    if path.startswith("/_emulator"):
        return None
    if path.startswith(OPEN_API_PREFIX):
        return OPEN_API_ENDPOINTS.get(path[len(OPEN_API_PREFIX) :].rstrip("/"), "unknown")
    if path.startswith(OPEN_API_V4_PREFIX):
        return OPEN_API_V4_ENDPOINTS.get(path[len(OPEN_API_V4_PREFIX) :].rstrip("/"), "unknown")
    if path.rstrip("/") == "/detect":
        return "detect"
    if path.rstrip("/") == "/interface/detect-api/detect_faces":
        return "detect_faces"
    if path.startswith("/media/"):
        return "media"
    return "unknown"


class Ledger:
    """Thread-safe record of requests; entries are created on arrival and completed with the reply."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_ENTRIES)
        self._listbyids_ids: deque[list[str]] = deque(maxlen=MAX_ENTRIES)
        self._callbacks: deque[dict[str, Any]] = deque(maxlen=MAX_ENTRIES)
        self._generation = 0

    @property
    def generation(self) -> int:
        """How many times the ledger was cleared; work started before a clear must not write into it."""
        with self._lock:
            return self._generation

    def begin(
        self,
        method: str,
        path: str,
        endpoint: str,
        auth: str,
        at: float,
        listbyids_ids: list[str] | None,
        user_agent: str = "",
    ) -> dict[str, Any]:
        """Count a request that reached ``endpoint``; returns its entry, completed later by :meth:`finish`."""
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "endpoint": endpoint,
            "auth": auth,
            "code": None,
            "http_status": 0,
            "at": at,
            "user_agent": user_agent,
        }
        with self._lock:
            if endpoint in self._counts:
                self._counts[endpoint] += 1
            if listbyids_ids is not None:
                self._listbyids_ids.append(listbyids_ids)
            self._requests.append(entry)
        return entry

    def finish(self, entry: dict[str, Any], code: int | None, http_status: int) -> None:
        """Store the reply's business code (``None`` if not an envelope) and HTTP status (0: no reply)."""
        with self._lock:
            entry["code"] = code
            entry["http_status"] = http_status

    def begin_callback(self, entry: dict[str, Any], generation: int) -> bool:
        """
        Record a webhook callback about to be sent; False (not recorded) if the ledger was cleared since.

        The entry has ``url``, ``_id``, ``status``, ``type``, ``attempts``, ``http_status``, ``delivered``,
        ``error`` and ``at``; :meth:`update_callback` completes it as the deliveries go.
        """
        with self._lock:
            if generation != self._generation:
                return False
            self._callbacks.append(entry)
            return True

    def update_callback(self, entry: dict[str, Any], **changes: Any) -> None:
        """Store the outcome of a delivery in a callback's entry."""
        with self._lock:
            entry.update(changes)

    def snapshot(self) -> dict[str, Any]:
        """A deep copy, safe to serialise while requests keep arriving."""
        with self._lock:
            return {
                "counts": dict(self._counts),
                "listbyids_ids": [list(ids) for ids in self._listbyids_ids],
                "requests": copy.deepcopy(list(self._requests)),
                "callbacks": copy.deepcopy(list(self._callbacks)),
            }

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._counts = dict.fromkeys(ENDPOINTS, 0)
            self._requests.clear()
            self._listbyids_ids.clear()
            self._callbacks.clear()
            self._generation += 1
