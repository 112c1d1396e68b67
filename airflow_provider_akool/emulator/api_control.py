"""The control API under ``/_emulator/`` (no auth, never faulted, never in the ledger)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_akool.emulator.api_common import get_state, read_json
from airflow_provider_akool.emulator.envelope import ApiError
from airflow_provider_akool.emulator.faults import parse_fault
from airflow_provider_akool.emulator.jobs import POISON_FORMS, STATUSES

router = APIRouter(prefix="/_emulator")


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _object(request: Request) -> dict[str, Any] | None:
    try:
        body = await read_json(request)
    except ApiError:
        return None
    return body if isinstance(body, dict) else None


@router.get("/health")
async def health() -> dict[str, bool]:
    """Liveness."""
    return {"ok": True}


@router.get("/faults")
async def list_faults(request: Request) -> dict[str, Any]:
    """The queued faults, in the order they apply."""
    return {"faults": get_state(request).faults.list()}


@router.post("/faults")
async def add_fault(request: Request) -> JSONResponse:
    """Queue a fault; ``expire_tokens`` acts at once instead of being queued."""
    state = get_state(request)
    try:
        fault = parse_fault(await _object(request))
    except ValueError as error:
        return _bad(str(error))
    if fault.kind == "expire_tokens":
        expired = state.expire_tokens()
        return JSONResponse(
            {"applied": "expire_tokens", "tokens_expired": expired, "faults": state.faults.list()}
        )
    state.faults.add(fault)
    return JSONResponse({"fault": fault.to_dict(), "faults": state.faults.list()})


@router.delete("/faults")
async def clear_faults(request: Request) -> dict[str, Any]:
    """Remove every queued fault."""
    state = get_state(request)
    state.faults.clear()
    return {"faults": []}


@router.get("/ledger")
async def ledger(request: Request) -> dict[str, Any]:
    """Counts, listbyids id lists, requests and jobs."""
    state = get_state(request)
    return {**state.ledger.snapshot(), "jobs": state.jobs_snapshot()}


@router.post("/reset")
async def reset(request: Request) -> dict[str, bool]:
    """Clear jobs, results, ledger, faults and account flags."""
    get_state(request).reset()
    return {"ok": True}


@router.get("/clock")
async def clock(request: Request) -> dict[str, float]:
    """The emulator time (epoch seconds)."""
    return {"now": get_state(request).now()}


@router.post("/clock")
async def advance_clock(request: Request) -> JSONResponse:
    """Move the emulator clock forward by ``advance`` seconds, and/or ``freeze`` it (true) or let it run."""
    body = await _object(request) or {}
    state = get_state(request)
    frozen = body.get("freeze")
    if frozen is not None and not isinstance(frozen, bool):
        return _bad("freeze must be true or false")
    seconds = body.get("advance", 0 if frozen is not None else None)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return _bad("advance must be a non-negative number of seconds")
    if frozen is not None:
        state.freeze(frozen)
    return JSONResponse({"now": state.advance(float(seconds))})


@router.post("/jobs/{job_id}/status")
async def set_job_status(job_id: str, request: Request) -> JSONResponse:
    """Pin a job's status (1 to 4); a pinned status no longer follows the clock."""
    state = get_state(request)
    body = await _object(request)
    status = body.get("status") if body else None
    if isinstance(status, bool) or status not in STATUSES:
        return _bad("status must be 1, 2, 3 or 4")
    with state.lock:
        job = state.job(job_id)
        if job is None:
            return _bad(f"no job with _id {job_id}", 404)
        job.force(status, state.now())
    return JSONResponse({"_id": job_id, "status": status})


@router.delete("/jobs/{job_id}")
async def delete_job(job_id: str, request: Request) -> JSONResponse:
    """Forget a job and its result, as if deleted on Akool (listbyids leaves it out; infobymodelid: 1008)."""
    state = get_state(request)
    with state.lock:
        if state.jobs.pop(job_id, None) is None:
            return _bad(f"no job with _id {job_id}", 404)
        state.results.pop(job_id, None)
    return JSONResponse({"_id": job_id, "deleted": True})


@router.post("/jobs/{job_id}/poison")
async def poison_job_entry(job_id: str, request: Request) -> JSONResponse:
    """Poison a reage job's ``listbyids`` entry (``form``), or heal it (``form: null``)."""
    state = get_state(request)
    body = await _object(request)
    if body is None or "form" not in body:
        return _bad(f"the body must be {{'form': one of {', '.join(POISON_FORMS)} or null, 'stray': bool}}")
    form, stray = body.get("form"), body.get("stray", False)
    if form is not None and form not in POISON_FORMS:
        return _bad(f"form must be one of {', '.join(POISON_FORMS)} or null")
    if not isinstance(stray, bool):
        return _bad("stray must be true or false")
    with state.lock:
        job = state.job(job_id)
        if job is None or job.kind == "bg_replace":
            return _bad(f"no reage job with _id {job_id}", 404)
        # ("", False) heals a job whose input markers poison it; None would let the markers speak again.
        job.poison = (form, stray) if form is not None else ("", False)
    return JSONResponse({"_id": job_id, "form": form, "stray": stray if form else False})


@router.get("/account")
async def account(request: Request) -> dict[str, Any]:
    """The account flags and its credit balance."""
    state = get_state(request)
    return {"banned": state.banned, "quota": state.quota_exhausted, "credit": state.credit_balance()}


@router.post("/account")
async def set_account(request: Request) -> JSONResponse:
    """
    Set ``banned`` (every call 1200), ``quota`` (submits 1006) and/or ``credit`` (the balance, a number
    >= 0); omitted (or null) fields are unchanged.
    """
    state = get_state(request)
    body = await _object(request)
    if body is None:
        return _bad("the body must be a JSON object")
    for name in ("banned", "quota"):
        if name in body and not isinstance(body[name], bool | None):
            return _bad(f"{name} must be a boolean")
    credit = body.get("credit")
    if credit is not None and (
        isinstance(credit, bool) or not isinstance(credit, int | float) or not 0 <= credit < float("inf")
    ):
        return _bad("credit must be a number of at least 0")
    with state.lock:
        if body.get("banned") is not None:
            state.banned = body["banned"]
        if body.get("quota") is not None:
            state.quota_exhausted = body["quota"]
        if credit is not None:
            state.credit = credit
    return JSONResponse(
        {"banned": state.banned, "quota": state.quota_exhausted, "credit": state.credit_balance()}
    )
