"""
The kinds of Akool job: one description each, found by name in one registry that every part asks.

A :class:`~airflow_provider_akool.kinds.base.JobKind` says how to submit jobs of its kind and ask Akool
about them (sync for workers, async for triggers), whether and how they are cancelled, which operator
parameters are media inputs, which trigger waits for them and how the shared poller batches their polls.
:func:`~airflow_provider_akool.kinds.base.register` files a kind by name;
:func:`~airflow_provider_akool.kinds.base.kind_named` finds it for the trigger, the webhook receiver, the
views and lineage. Importing this package registers the built-in kinds.
"""

from __future__ import annotations

from airflow_provider_akool.kinds.background_change import BACKGROUND_CHANGE
from airflow_provider_akool.kinds.base import JobKind, MediaInput, kind_named, register, registered_kinds
from airflow_provider_akool.kinds.faceswap import FACESWAP, FACESWAP_PRO
from airflow_provider_akool.kinds.reage import REAGE

__all__ = [
    "BACKGROUND_CHANGE",
    "FACESWAP",
    "FACESWAP_PRO",
    "REAGE",
    "JobKind",
    "MediaInput",
    "kind_named",
    "register",
    "registered_kinds",
]
