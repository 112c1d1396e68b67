"""Everything the emulator remembers: clock, tokens, account, jobs, results, faults and ledger."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_akool.emulator.envelope import INVALID_TOKEN, NO_AUTH, QUOTA, ApiError
from airflow_provider_akool.emulator.faults import FaultQueue
from airflow_provider_akool.emulator.jobs import Job, new_job_id, new_object_id
from airflow_provider_akool.emulator.ledger import Ledger

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_akool.emulator.config import EmulatorConfig


@dataclass(frozen=True)
class Auth:
    """
    How a request authenticated.

    :param kind: ``api_key``, ``bearer_key``, ``token``, ``none`` or ``invalid`` (a wrong credential).
    :param error: ``None`` if accepted, else 1101 (wrong or expired) or 1102 (absent).
    """

    kind: str
    error: int | None


def _digest(token: str) -> str:
    # Tokens are kept only as digests, so not even a state dump reveals a usable credential.
    return hashlib.sha256(token.encode()).hexdigest()


class EmulatorState:
    """
    The mutable state of one emulator; shared by the server thread and test threads, hence the lock.

    :param config: The settings; read-only after construction.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.faults = FaultQueue()
        self.ledger = Ledger()
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._tokens: dict[str, float] = {}
        self.banned = False
        self.quota_exhausted = False
        self.credit: float = config.credit
        self.jobs: dict[str, Job] = {}
        self.results: dict[str, tuple[bytes, str]] = {}

    # Clock ---------------------------------------------------------------------------------------------
    def now(self) -> float:
        """Emulator time: wall-clock seconds (or the moment it was frozen) plus every ``advance``."""
        with self.lock:
            base = self._frozen_at if self._frozen_at is not None else time.time()
            return base + self._offset

    def freeze(self, frozen: bool) -> float:
        """
        Stop (or restart) the wall clock, so that only ``advance`` moves time.

        Tests that step a job through its statuses freeze the clock: under load, real seconds would
        otherwise slip past a short window. Unfreezing keeps the emulator time where it is.
        """
        with self.lock:
            now = self.now()
            if frozen and self._frozen_at is None:
                self._frozen_at = time.time()
            elif not frozen and self._frozen_at is not None:
                self._offset = now - time.time()
                self._frozen_at = None
            return self.now()

    def advance(self, seconds: float) -> float:
        """Move the clock forward (never back, so statuses never regress) and return the new time."""
        if seconds < 0:
            raise ValueError("advance must not be negative")
        with self.lock:
            self._offset += seconds
            return self.now()

    # Account and reset ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """
        Forget jobs, results, ledger, faults and account flags, and refill the credit balance to its
        configured start; tokens and the clock are kept (running).
        """
        self.freeze(False)
        with self.lock:
            self.jobs.clear()
            self.results.clear()
            self.banned = False
            self.quota_exhausted = False
            self.credit = self.config.credit
        self.faults.clear()
        self.ledger.clear()

    def charge(self, kind: str) -> float:
        """
        Take the price of a job of ``kind`` from the balance and return it; 1006 if the balance is short.

        Called with the job's creation under one lock hold, so two submissions can never spend one credit.
        """
        price = self.config.price(kind)
        with self.lock:
            if self.credit < price:
                raise ApiError(QUOTA)
            self.credit -= price
            return price

    def credit_balance(self) -> int | float:
        """The balance as Akool's reply carries it: an int when whole."""
        with self.lock:
            credit = self.credit
        return int(credit) if float(credit).is_integer() else credit

    # Tokens --------------------------------------------------------------------------------------------
    def issue_token(self) -> str:
        """A new opaque token for ``getToken``."""
        token = secrets.token_urlsafe(32)
        with self.lock:
            self._tokens[_digest(token)] = self.now()
        return token

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` was issued, not revoked and not past ``token_ttl_seconds``."""
        with self.lock:
            issued = self._tokens.get(_digest(token))
            if issued is None:
                return False
            ttl = self.config.token_ttl_seconds
            return ttl is None or self.now() - issued <= ttl

    def expire_tokens(self) -> int:
        """Invalidate every token issued so far; returns how many there were."""
        with self.lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    def authenticate(self, headers: Mapping[str, str]) -> Auth:
        """Classify the credentials of a request; ``Authorization`` wins over ``x-api-key``."""
        authorization = headers.get("authorization", "").strip()
        api_key = headers.get("x-api-key", "").strip()
        if authorization:
            scheme, _, value = authorization.partition(" ")
            value = value.strip()
            if scheme.lower() != "bearer" or not value:
                return Auth("invalid", INVALID_TOKEN)
            if hmac.compare_digest(value.encode(), self.config.api_key.encode()):
                return Auth("bearer_key", None)
            if self.token_valid(value):
                return Auth("token", None)
            return Auth("invalid", INVALID_TOKEN)
        if api_key:
            if hmac.compare_digest(api_key.encode(), self.config.api_key.encode()):
                return Auth("api_key", None)
            return Auth("invalid", INVALID_TOKEN)
        return Auth("none", NO_AUTH)

    # Jobs ----------------------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        """Store a new job."""
        with self.lock:
            self.jobs[job.id] = job

    def new_object_id(self, now: float) -> str:
        """A fresh ``_id``."""
        with self.lock:
            while True:
                candidate = new_object_id(now)
                if candidate not in self.jobs:
                    return candidate

    def new_job_id(self, now: float) -> str:
        """A fresh reage ``job_id`` (four random digits can collide within one millisecond)."""
        with self.lock:
            taken = {job.job_id for job in self.jobs.values()}
            while True:
                candidate = new_job_id(now)
                if candidate not in taken:
                    return candidate

    def job(self, job_id: str) -> Job | None:
        """The job with this ``_id``."""
        with self.lock:
            return self.jobs.get(job_id)

    def jobs_by_job_id(self, job_ids: list[str]) -> list[Job]:
        """Reage jobs whose ``job_id`` is listed."""
        wanted = set(job_ids)
        with self.lock:
            return [job for job in self.jobs.values() if job.job_id is not None and job.job_id in wanted]

    def jobs_snapshot(self) -> dict[str, dict[str, Any]]:
        """The ledger's view of jobs: no inputs, no credentials."""
        with self.lock:
            now = self.now()
            return {
                job.id: {
                    "job_id": job.job_id,
                    "kind": job.kind,
                    "status": job.status(now),
                    "webhook_url": job.webhook_url,
                    "cancelled": job.cancelled,
                    # Only for poisoned jobs, so that the entries of every other job keep their shape.
                    **({"entry_poison": job.entry_poison[0]} if job.entry_poison else {}),
                    # Only for jobs with downloaded inputs (inputs.py): status, size, digest; never the URL.
                    **(
                        {"fetched_inputs": list(job.extra["fetched_inputs"])}
                        if job.extra.get("fetched_inputs")
                        else {}
                    ),
                }
                for job in self.jobs.values()
            }
