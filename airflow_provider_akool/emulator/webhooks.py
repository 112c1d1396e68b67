"""
Webhook callbacks: POST a signed, encrypted callback to a job's ``webhookUrl`` when its status changes.

Job statuses are computed lazily from the emulator clock, so a small task on the server's event loop
(started and stopped with the app's lifespan) looks at the jobs every :data:`POLL_SECONDS`, notices the
statuses each job with a ``webhookUrl`` has reached since it last looked, and hands one callback per new
status (2, 3, 4, in the order the job went through them) to a delivery worker of that job. Each worker
sends its job's callbacks in order and retries one until the receiver answers HTTP 200, a bounded number
of times; a slow or dead receiver delays nobody else and never blocks request handling.

Callbacks are made with :func:`airflow_provider_akool.webhook.build_callback` and the emulator's
``client_id``/``client_secret``, exactly as a receiver verifies them. Only loopback URLs are called: the
emulator is a test tool on a machine without network, and its traffic must stay on this host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_akool.emulator.jobs import FAILED, PROCESSING, QUEUED, SUCCESS, Job
from airflow_provider_akool.webhook.signing import build_callback, credentials_problem

if TYPE_CHECKING:
    from airflow_provider_akool.emulator.state import EmulatorState

log = logging.getLogger(__name__)

#: How often the jobs are looked at: the delay between a status change and its callback.
POLL_SECONDS = 0.05
#: Deliveries of one callback, the first included, before it is given up.
ATTEMPTS = 5
#: The wait before the first retry; it doubles for each further one (0.1, 0.2, 0.4, 0.8 s).
BACKOFF_SECONDS = 0.1
#: Seconds the receiver has to answer one delivery.
TIMEOUT_SECONDS = 2.0
#: The plain text's ``type`` per kind of job, in Akool's words.
CALLBACK_TYPES = {
    "imgreage": "faceswap",
    "vidreage": "faceswap",
    "specifyimage": "faceswap",
    "specifyvideo": "faceswap",
    "faceswapByImage": "faceswap",
    "bg_replace": "background change",
}
USER_AGENT = "akool-emulator-webhook"


def loopback_refusal(url: str) -> str | None:
    """Return why the emulator will not call ``url``, or None for an http(s) URL on a loopback host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return f"the scheme {parts.scheme!r} is not http or https"
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"{host!r} is not a loopback address; the emulator only calls 127.0.0.1, ::1 or localhost"


def statuses_reached(job: Job, now: float) -> list[int]:
    """
    Return the statuses after queued that ``job`` has been in by ``now``, in order, without repeats.

    A job whose clock jumped from queued to done still went through processing (at its emulator time),
    so it gets both callbacks, as it would from Akool; a job pinned from queued to failed never did.
    """
    # The same comparisons as Job.status, so a callback never runs ahead of what listbyids answers.
    end = now if job.forced_status is None else min(now, job.forced_at)
    elapsed = end - job.created_at
    reached: list[int] = []
    if elapsed >= job.queued_seconds:
        reached.append(PROCESSING)
        if not job.stuck and elapsed >= job.queued_seconds + job.processing_seconds:
            reached.append(FAILED if job.fails else SUCCESS)
    if job.forced_status is not None:
        reached.append(job.forced_status)
    ordered: list[int] = []
    for status in reached:
        if status != QUEUED and (not ordered or ordered[-1] != status):
            ordered.append(status)
    return ordered


@dataclass
class Callback:
    """One status change to tell a receiver about; its ledger entry is created at its first delivery."""

    job_id: str
    url: str
    status: int
    kind: str
    result_url: str
    at: float
    generation: int
    attempts: int = 0
    entry: dict[str, Any] | None = field(default=None, repr=False)

    def data(self) -> dict[str, Any]:
        """The plain text Akool encrypts: ``{"_id", "status", "type", "url"}``; ``url`` once it succeeded."""
        return {
            "_id": self.job_id,
            "status": self.status,
            "type": CALLBACK_TYPES.get(self.kind, self.kind),
            "url": self.result_url if self.status == SUCCESS else "",
        }


class WebhookDispatcher:
    """
    Notices status changes of jobs with a ``webhookUrl`` and delivers their callbacks.

    It belongs to the app (its memory of what was sent survives a server restart, like the state); its
    tasks run on the server's event loop between :meth:`start` and :meth:`stop`.

    :param state: The emulator state to watch.
    :param poll_seconds: How often the jobs are looked at.
    :param attempts: Deliveries of one callback before it is given up.
    :param backoff_seconds: The wait before the first retry, doubled for each further one.
    :param timeout_seconds: How long one delivery may take.
    """

    def __init__(
        self,
        state: EmulatorState,
        *,
        poll_seconds: float = POLL_SECONDS,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self.state = state
        self.poll_seconds = poll_seconds
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._notified: dict[str, list[int]] = {}
        self._queues: dict[str, deque[Callback]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        """Start watching, and resume the deliveries a previous :meth:`stop` interrupted."""
        if self._watcher is not None:
            return
        # No proxies from the environment and no redirects: a callback must not leave the loopback host.
        self._client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=self.timeout_seconds,
            headers={"user-agent": USER_AGENT},
        )
        for job_id in self._queues:
            self._spawn(job_id)
        self._watcher = asyncio.create_task(self._watch(), name="akool-emulator-webhooks")

    async def stop(self) -> None:
        """Cancel the watcher and the deliveries in flight (kept queued for a restart), close the client."""
        tasks = [task for task in (self._watcher, *self._workers.values()) if task is not None]
        self._watcher = None
        self._workers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _watch(self) -> None:
        while True:
            try:
                for callback in self.scan():
                    self._queues.setdefault(callback.job_id, deque()).append(callback)
                    self._spawn(callback.job_id)
            except Exception:
                # A bug here must not end the callbacks for the rest of the emulator's life.
                log.exception("The emulator's webhook watcher failed; it carries on")
            await asyncio.sleep(self.poll_seconds)

    def scan(self) -> list[Callback]:
        """Return the callbacks for statuses reached since the last scan; forget jobs no longer stored."""
        state = self.state
        found: list[Callback] = []
        with state.lock:
            now = state.now()
            generation = state.ledger.generation
            jobs = {job.id: job for job in state.jobs.values() if job.webhook_url}
            for job in jobs.values():
                reached = statuses_reached(job, now)
                notified = self._notified.get(job.id, [])
                if reached[: len(notified)] == notified:
                    new = reached[len(notified) :]
                elif reached and reached[-1] != notified[-1]:
                    # Pinned through the control API after a callback went out: report where it is now.
                    new = reached[-1:]
                else:
                    new = []
                self._notified[job.id] = reached
                found.extend(
                    Callback(job.id, job.webhook_url or "", status, job.kind, job.url, now, generation)
                    for status in new
                )
        for job_id in [job_id for job_id in self._notified if job_id not in jobs]:
            # The job was reset away: so are its pending callbacks.
            del self._notified[job_id]
            self._queues.pop(job_id, None)
            worker = self._workers.pop(job_id, None)
            if worker is not None:
                worker.cancel()
        return found

    def _spawn(self, job_id: str) -> None:
        if job_id not in self._workers:
            self._workers[job_id] = asyncio.create_task(self._drain(job_id), name=f"akool-webhook-{job_id}")

    async def _drain(self, job_id: str) -> None:
        try:
            queue = self._queues.get(job_id)
            while queue:
                # Taken off the queue only once done, so a delivery cut short by stop() resumes on start().
                await self._deliver(queue[0])
                queue.popleft()
            if self._queues.get(job_id) is queue:
                self._queues.pop(job_id, None)
        finally:
            if self._workers.get(job_id) is asyncio.current_task():
                del self._workers[job_id]

    async def _deliver(self, callback: Callback) -> None:
        ledger = self.state.ledger
        if callback.entry is None:
            entry: dict[str, Any] = {
                "url": callback.url,
                "_id": callback.job_id,
                "status": callback.status,
                "type": CALLBACK_TYPES.get(callback.kind, callback.kind),
                "attempts": 0,
                "http_status": 0,
                "delivered": False,
                "error": None,
                "at": callback.at,
            }
            if not ledger.begin_callback(entry, callback.generation):
                return  # the ledger was reset since the status change: the callback belongs to the past
            callback.entry = entry
        entry = callback.entry
        config = self.state.config
        problem = loopback_refusal(callback.url) or credentials_problem(config.client_id, config.secret)
        if problem:
            ledger.update_callback(entry, error=f"not sent: {problem}")
            log.warning(
                "Not sending the callback of job %s to %s: %s", callback.job_id, callback.url, problem
            )
            return
        client = self._client
        assert client is not None, "deliveries run only between start() and stop()"
        while callback.attempts < self.attempts:
            if callback.attempts:
                await asyncio.sleep(self.backoff_seconds * 2 ** (callback.attempts - 1))
            callback.attempts += 1
            # Signed afresh for each attempt, so a retry is never refused as stale by the receiver.
            body = build_callback(config.client_id, config.secret, callback.data())
            try:
                response = await client.post(
                    callback.url,
                    content=json.dumps(body).encode(),
                    headers={"content-type": "application/json"},
                )
                http_status, error = response.status_code, None
                if http_status != 200:
                    error = f"HTTP {http_status}"
            except httpx.HTTPError as err:
                http_status, error = 0, f"{type(err).__name__}: {err}"
            ledger.update_callback(
                entry,
                attempts=callback.attempts,
                http_status=http_status,
                delivered=http_status == 200,
                error=error,
            )
            # Akool counts only HTTP 200 as received; anything else, 2xx included, is retried.
            if http_status == 200:
                log.debug("Delivered the status %s callback of job %s", callback.status, callback.job_id)
                return
        log.warning(
            "Gave up the status %s callback of job %s to %s after %s attempts: %s",
            callback.status,
            callback.job_id,
            callback.url,
            callback.attempts,
            entry.get("error"),
        )
