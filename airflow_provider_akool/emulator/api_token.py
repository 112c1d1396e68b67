"""``POST /api/open/v3/getToken``: exchange clientId and clientSecret for a bearer token."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_akool.emulator import validation
from airflow_provider_akool.emulator.api_common import check_banned, get_state, read_json
from airflow_provider_akool.emulator.envelope import INVALID_TOKEN, MESSAGES, OK

router = APIRouter()


@router.post("/getToken")
async def get_token(request: Request) -> JSONResponse:
    """Issue a token; note the vendor's shape: ``token`` at the top level and no ``data``."""
    state = get_state(request)
    client_id, client_secret = validation.credentials(await read_json(request))
    config = state.config
    id_ok = hmac.compare_digest(client_id.encode(), config.client_id.encode())
    secret_ok = hmac.compare_digest(client_secret.encode(), config.secret.encode())
    if not (id_ok and secret_ok):
        return JSONResponse({"code": INVALID_TOKEN, "msg": MESSAGES[INVALID_TOKEN]})
    check_banned(request, state)
    return JSONResponse({"code": OK, "token": state.issue_token()})
