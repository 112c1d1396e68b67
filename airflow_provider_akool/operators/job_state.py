"""
What a submitting operator keeps of its job: the record that outlives a try, and the state of one try.

:class:`JobRecord` is what ``task_state_store`` (Airflow 3.3+) keeps under ``akool_job`` so that a later try
resumes the job instead of paying for a second one. Its stored form is a JSON object with the keys of the
first release (``id``, ``job_id``, ``url``, ``submitted_at``, ``kind``, and ``webhook_token_sha256`` when
Akool calls the receiver back): a record written by an earlier version is read, and one written here is read
by an earlier version. :class:`TryState` is what one try of the task learns on its way, reset by each
``execute()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_akool.wait import JobSnapshot
from airflow_provider_akool.webhook.callback_url import digest_of_record

if TYPE_CHECKING:
    from pydantic import JsonValue


@dataclass(frozen=True)
class JobRecord:
    """
    The submitted job as ``task_state_store`` keeps it, for the tries that follow.

    :param job: the job as its submission (or a later poll) saw it; its ``status`` is not stored.
    :param submitted_at: when the job was submitted (epoch seconds): the origin of the deadline and of the
        7 days Akool keeps a result.
    :param kind: the job kind's name (``reage``, ``background change``); stored for people reading the
        store, not read back.
    :param webhook_token_sha256: the digest of the callback token given to Akool, when Akool calls the
        provider's receiver: a later try that resumes the job expects callbacks with that token.
    """

    job: JobSnapshot
    submitted_at: float
    kind: str | None = None
    webhook_token_sha256: str | None = None

    def to_stored(self) -> dict[str, JsonValue]:
        """Return the JSON object ``task_state_store`` keeps (the keys of the first release)."""
        stored: dict[str, JsonValue] = {
            "id": self.job.id,
            "job_id": self.job.job_id,
            "url": self.job.url,
            "submitted_at": self.submitted_at,
            "kind": self.kind,
        }
        if self.webhook_token_sha256:
            # Only the digest: the token itself never goes to a store.
            stored["webhook_token_sha256"] = self.webhook_token_sha256
        return stored

    @classmethod
    def from_stored(cls, stored: Any) -> JobRecord | None:
        """Return the record a stored value holds, or None when it is not one this provider can read."""
        if not isinstance(stored, dict):
            return None
        akool_id, job_id, url, submitted_at = (stored.get(k) for k in ("id", "job_id", "url", "submitted_at"))
        if not (isinstance(akool_id, str) and akool_id):
            return None
        if not all(v is None or isinstance(v, str) for v in (job_id, url)):
            return None
        if isinstance(submitted_at, bool) or not isinstance(submitted_at, (int, float)):
            return None
        kind = stored.get("kind")
        return cls(
            job=JobSnapshot(id=akool_id, status=None, url=url, job_id=job_id),
            submitted_at=float(submitted_at),
            kind=kind if isinstance(kind, str) else None,
            webhook_token_sha256=digest_of_record(stored),
        )


@dataclass
class TryState:
    """
    What one try of a submitting operator learns on its way; each ``execute()`` starts a new one.

    :param started_at: when this try began (epoch seconds), the origin of ``execution_timeout``.
    :param job: the job this try works on: submitted by it, or recorded by an earlier try and polled.
    :param submitted_now: whether this try submitted :attr:`job` (rather than resuming it).
    :param running_job: the job being waited for in this worker, for ``on_kill``; None once the trigger
        owns it or it finished.
    :param first_poll_at: after the check made before deferring: when the trigger polls first (epoch seconds).
    :param result: the task's return value, once the wait ended.
    :param result_url: the result URL this try pushed to XCom (``akool_result_url``), None before it did.
    :param signed_inputs: the signed URLs of object-storage inputs, by parameter: made once, never in a field.
    """

    started_at: float = field(default_factory=time.time)
    job: JobRecord | None = None
    submitted_now: bool = False
    running_job: JobSnapshot | None = None
    first_poll_at: float = 0.0
    result: dict[str, Any] | None = None
    result_url: str | None = None
    signed_inputs: dict[str, str] = field(default_factory=dict)
