"""The questions tests ask the emulator's ledger, and the job statuses it records (Akool's codes)."""

from __future__ import annotations

from typing import Any

#: The endpoints that create a job (a request to one may be paid for).
SUBMIT_ENDPOINTS = ("imgreage", "vidreage", "bg_replace", "specifyimage", "specifyvideo", "faceswapByImage")
QUEUED, PROCESSING, SUCCESS, FAILED = 1, 2, 3, 4


def submissions(ledger: dict[str, Any]) -> int:
    """How many submit requests reached the emulator (faulted or not)."""
    counts: dict[str, int] = ledger["counts"]
    return sum(counts[endpoint] for endpoint in SUBMIT_ENDPOINTS)


def running_jobs(ledger: dict[str, Any]) -> list[str]:
    """The ids of the jobs still queued or processing on the emulator: what would still be billed."""
    return [akool_id for akool_id, job in ledger["jobs"].items() if job["status"] in (QUEUED, PROCESSING)]
