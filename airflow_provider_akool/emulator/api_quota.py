"""The credit balance: ``GET faceswap/quota/info`` (what Akool's official face-swap demo reads)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse  # noqa: TC002 - FastAPI resolves route annotations at runtime

from airflow_provider_akool.emulator.api_common import authorized
from airflow_provider_akool.emulator.envelope import OK, reply

router = APIRouter()


@router.get("/faceswap/quota/info")
async def quota_info(request: Request) -> JSONResponse:
    """The account's credit balance; each accepted submission lowers it by its price."""
    state = authorized(request)
    return reply(OK, "OK", {"credit": state.credit_balance()})
