"""
The kinds of Akool job: one small description each, which operators, sensors and triggers all use.

A :class:`~airflow_provider_akool.kinds.base.JobKind` says how to ask Akool about jobs of its kind (sync
for workers, async for triggers), whether and how they are cancelled, which trigger waits for them, how the
shared poller batches their polls, and how a submission's reply names the job. Asking Akool about a job is
written there once, so a fix lands in the worker, poke, reschedule and deferrable modes at once.
"""

from __future__ import annotations

from airflow_provider_akool.kinds.background_change import BACKGROUND_CHANGE
from airflow_provider_akool.kinds.base import JobKind
from airflow_provider_akool.kinds.reage import REAGE

__all__ = ["BACKGROUND_CHANGE", "REAGE", "JobKind"]
