"""The Akool reply envelope ``{"code", "msg", "data"}`` and the vendor's error codes and messages."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

OK = 1000
PARAM_ERROR = 1003
TOO_FREQUENT = 1005
QUOTA = 1006
TOO_MANY_FACES = 1007
NOT_FOUND = 1008
INVALID_TOKEN = 1101
NO_AUTH = 1102
BANNED = 1200
BG_PROCESSING_ERROR = 1206

# The wording of the seed pages' "Response Code Description" table, so clients that log msg see the real text;
# the rest of Akool's older error-code page after it (answered only through the ``code`` fault).
MESSAGES: dict[int, str] = {
    OK: "OK",
    PARAM_ERROR: "Parameter error or Parameter can not be empty",
    TOO_FREQUENT: "Operation is too frequent",
    QUOTA: "Your quota is not enough",
    TOO_MANY_FACES: "The number of people who can have their faces changed cannot exceed 8",
    NOT_FOUND: "The content you get does not exist",
    INVALID_TOKEN: "Invalid authorization or The request token has expired",
    NO_AUTH: "Authorization cannot be empty",
    BANNED: "The account has been banned",
    BG_PROCESSING_ERROR: "Background change processing error",
    1004: "Requires verification",
    1009: "You do not have permission to operate",
    1010: "You can not operate this content",
    1011: "This content has been operated",
    1014: "Resource does not exist",
    1015: "Video processing error, please retry later",
    1016: "Face swapping error",
    1103: "Not paid or payment is overdue",
    1104: "Insufficient credit balance",
    1108: "Image processing error",
    1109: "Account does not exist",
    1205: "Create video error",
    1207: "The video size exceeds the limit",
    1208: "Video parsing error",
    1209: "The video encoding format is not supported",
    1213: "Requires a subscription",
    1221: "The account is not subscribed",
}

SUBMIT_MESSAGE = (
    "Please be patient! If your results are not generated in three hours, please check your input image."
)


class ApiError(Exception):
    """
    A business error that ends a request with an error envelope (always HTTP 200, as on Akool).

    :param code: The Akool code, e.g. 1003.
    :param msg: The message; defaults to the vendor's wording for the code.
    """

    def __init__(self, code: int, msg: str | None = None) -> None:
        self.code = code
        self.msg = msg if msg is not None else MESSAGES.get(code, "Error")
        super().__init__(f"{self.code}: {self.msg}")


class ParamError(ApiError):
    """
    A 1003 reply whose message names the offending parameter.

    :param name: The parameter, e.g. ``face_reage`` or ``targetImage[0].opts``.
    :param problem: What is wrong with it, e.g. ``must be an integer in [-30, 30]``.
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(PARAM_ERROR, f"Parameter error: {name} {problem}")


def envelope(code: int = OK, msg: str | None = None, data: Any = None) -> dict[str, Any]:
    """Build ``{"code", "msg", "data"}``."""
    return {"code": code, "msg": msg if msg is not None else MESSAGES.get(code, "Error"), "data": data}


def reply(code: int = OK, msg: str | None = None, data: Any = None) -> JSONResponse:
    """An envelope as an HTTP 200 JSON response."""
    return JSONResponse(envelope(code, msg, data))


def error_reply(error: ApiError) -> JSONResponse:
    """An :class:`ApiError` as an HTTP 200 JSON response."""
    return JSONResponse(envelope(error.code, error.msg, None))
