"""
One exception class per way an Akool call can fail.

Akool answers HTTP 200 with a business ``code`` in the body; :func:`error_for_code` turns a code into
its class, so callers choose what to do by class (or by ``code``), never by matching message text.
Every exception carries the code, Akool's message and the endpoint, and never a credential: the
messages are built only from the reply and the endpoint's name.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk.exceptions import AirflowException


class AkoolError(AirflowException):
    """
    Base class of every error raised by this provider.

    :param message: what went wrong, in words a user can act on.
    :param code: Akool's business code, where the reply had one.
    :param endpoint: the logical Akool endpoint, such as ``imgreage`` or ``listbyids``.
    """

    def __init__(self, message: str, *, code: int | None = None, endpoint: str | None = None) -> None:
        self.message = message
        self.code = code
        self.endpoint = endpoint
        super().__init__(self._render())

    def _render(self) -> str:
        where = f" [{self.endpoint}]" if self.endpoint else ""
        code = f" (code {self.code})" if self.code is not None else ""
        return f"Akool{where}{code}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments need help to survive pickling (Airflow pickles task failures).
        return (_rebuild, (type(self), self.message, self.code, self.endpoint, self.__dict__))


def _rebuild(
    cls: type[AkoolError], message: str, code: int | None, endpoint: str | None, state: dict[str, object]
) -> AkoolError:
    exc = cls.__new__(cls)
    AkoolError.__init__(exc, message, code=code, endpoint=endpoint)
    exc.__dict__.update(state)
    return exc


# --- Replies that do not make sense -------------------------------------------------------------


class AkoolResponseError(AkoolError):
    """The reply could not be understood: not JSON, an HTML error page, or a required field missing."""


class AkoolServerError(AkoolError):
    """The server or a gateway in front of it answered with an HTTP 5xx status."""

    def __init__(self, message: str, *, http_status: int, endpoint: str | None = None) -> None:
        self.http_status = http_status
        super().__init__(message, endpoint=endpoint)


# --- Transport ----------------------------------------------------------------------------------


class AkoolConnectionError(AkoolError):
    """
    The request did not get a reply: refused, reset, dropped or timed out.

    :param request_sent: False only when the request surely never reached the server (connection
        refused, DNS failure, connect timeout), which is what makes resubmitting a job safe.
    """

    def __init__(self, message: str, *, request_sent: bool, endpoint: str | None = None) -> None:
        self.request_sent = request_sent
        super().__init__(message, endpoint=endpoint)


class AkoolSubmitOutcomeUnknownError(AkoolError, AirflowFailException):
    """
    A job submission failed after the request may have reached Akool.

    The job may exist and be billed. The provider never resubmits in this case, because a second job
    would be paid for twice; check the Akool dashboard (or the ``webhookUrl`` callbacks) before you retry.
    It is an ``AirflowFailException`` too: the task fails without using its retries, since an automatic
    retry would be exactly the blind resubmission the hook refused.
    """


# --- Business codes (HTTP 200, ``code != 1000``) --------------------------------------------------


class AkoolApiError(AkoolError):
    """Akool answered with a business code other than 1000."""


class AkoolInvalidParameterError(AkoolApiError):
    """1003: a parameter is wrong or missing."""


class AkoolRateLimitError(AkoolApiError):
    """
    1005 "Operation is too frequent", or HTTP 429 from a gateway.

    :param retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, code=code, endpoint=endpoint)


class AkoolQuotaExceededError(AkoolApiError):
    """1006: the account's quota is not enough."""


class AkoolTooManyFacesError(AkoolApiError):
    """1007: more than 8 faces in one request."""


class AkoolNotFoundError(AkoolApiError):
    """1008: the content does not exist."""


class AkoolPermissionDeniedError(AkoolApiError):
    """1009: permission denied."""


class AkoolAuthError(AkoolApiError):
    """Authentication failed: the key, the client credentials or the token are not accepted."""


class AkoolInvalidTokenError(AkoolAuthError):
    """1101: invalid authorization, or the token has expired."""


class AkoolMissingAuthError(AkoolAuthError):
    """1102: no authorization was sent."""


class AkoolAccountBannedError(AkoolApiError):
    """1200: the account has been banned."""


class AkoolBackgroundChangeError(AkoolApiError):
    """1206: the background change failed while processing."""


class AkoolFaceDetectError(AkoolApiError):
    """The face-detect service answered with a non-zero ``error_code``."""


# --- Job outcomes -------------------------------------------------------------------------------


class AkoolJobFailedError(AkoolError):
    """
    An Akool job ended with status 4 (failed).

    :param akool_id: the job's ``_id``.
    :param job_id: the reage ``job_id``, where there is one.
    :param reasons: whatever reasons Akool gave (``error_reasons`` for background change).
    """

    def __init__(
        self,
        message: str,
        *,
        akool_id: str,
        job_id: str | None = None,
        reasons: list[object] | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.akool_id = akool_id
        self.job_id = job_id
        self.reasons = reasons or []
        super().__init__(message, endpoint=endpoint)


class AkoolJobTimeoutError(AkoolError):
    """The wait for a job passed its deadline (the job is cancelled where the API allows it)."""


class AkoolResultUnavailableError(AkoolError):
    """
    A result file could not be downloaded: it expired (Akool keeps results for 7 days) or never existed.

    :param http_status: the status the file server answered with.
    """

    def __init__(self, message: str, *, http_status: int | None = None, endpoint: str | None = None) -> None:
        self.http_status = http_status
        super().__init__(message, endpoint=endpoint)


class AkoolValidationError(AkoolError, ValueError):
    """An operator, sensor or hook argument is not of the allowed form; raised before any request."""


# --- Keeping results (``output_path``) -------------------------------------------------------------


class AkoolOutputPathError(AkoolValidationError, AirflowFailException):
    """
    ``output_path`` cannot receive a result, found before any request: nothing was submitted or paid.

    A scheme no installed fsspec backend serves, a connection that does not exist, a path under a regular
    file, a folder that cannot be written, or one file name for every index of a mapped task. A retry
    cannot fix it, so the task fails without using its retries.
    """


class AkoolOutputExistsError(AkoolError, AirflowFailException):
    """
    The file ``output_path`` names already exists, and ``overwrite`` is False: it was not replaced.

    Raised before the submission when the name is known then (nothing was paid), or when keeping a
    result that another task wrote first; then ``url`` says where the result still is on Akool and
    ``expires_at`` until when. The task fails without using its retries: a retry would meet the same file.

    :param path: the file that already exists.
    :param url: the result's URL on Akool, when a job was paid for; None before the submission.
    :param expires_at: until when Akool keeps that result (ISO 8601, UTC), when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        url: str | None = None,
        expires_at: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.path = path
        self.url = url
        self.expires_at = expires_at
        super().__init__(message, endpoint=endpoint)


class AkoolOutputError(AkoolError):
    """
    The result of a job that succeeded (and was paid for) could not be written to ``output_path``.

    The disk is full, a permission changed, a folder became a file... The message says where the result
    still is on Akool and until when. It keeps the task's retries: on Airflow 3.3+ a retry resumes the
    recorded job and keeps its result again without paying for a new one.

    :param path: where the result was to be kept.
    :param url: the result's URL on Akool.
    :param expires_at: until when Akool keeps it (ISO 8601, UTC).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        url: str | None = None,
        expires_at: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.path = path
        self.url = url
        self.expires_at = expires_at
        super().__init__(message, endpoint=endpoint)


# --- Webhook callbacks (``airflow_provider_akool.webhook``) --------------------------------------


class AkoolWebhookError(AkoolError):
    """
    A webhook callback was rejected: it is not a genuine, fresh and well-formed Akool callback.

    A receiver answers every rejection the same way (for example HTTP 400 with no detail) and logs the
    message; the subclasses say why, for logs and tests.
    """


class AkoolWebhookSignatureError(AkoolWebhookError):
    """The ``signature`` does not match the other fields: altered, or signed for another clientId."""


class AkoolWebhookStaleError(AkoolWebhookError):
    """
    The callback's ``timestamp`` lies outside the freshness window: a replay, or clocks far apart.

    :param age_seconds: how old the callback is by the receiver's clock; negative when it is from the future.
    """

    def __init__(self, message: str, *, age_seconds: float, endpoint: str | None = None) -> None:
        self.age_seconds = age_seconds
        super().__init__(message, endpoint=endpoint)


class AkoolWebhookMalformedError(AkoolWebhookError):
    """
    The callback is not of Akool's form.

    The body is not a JSON object, a field is missing or of the wrong type, ``dataEncrypt`` is not base64 or
    does not decrypt (wrong clientSecret or clientId, or altered data), or the plain text lacks ``_id`` or
    ``status``.
    """


class AkoolWebhookConfigurationError(AkoolWebhookError, ValueError):
    """The credentials given to the verifier cannot work (clientSecret not 16, 24 or 32 bytes long, ...)."""


#: Akool's business codes and the class each one raises.
ERROR_CODES: dict[int, type[AkoolApiError]] = {
    1003: AkoolInvalidParameterError,
    1005: AkoolRateLimitError,
    1006: AkoolQuotaExceededError,
    1007: AkoolTooManyFacesError,
    1008: AkoolNotFoundError,
    1009: AkoolPermissionDeniedError,
    1101: AkoolInvalidTokenError,
    1102: AkoolMissingAuthError,
    1200: AkoolAccountBannedError,
    1206: AkoolBackgroundChangeError,
}


def error_for_code(code: int, message: str, endpoint: str | None = None) -> AkoolApiError:
    """Return the exception for an Akool business code (``AkoolApiError`` for codes not documented)."""
    cls = ERROR_CODES.get(code, AkoolApiError)
    return cls(message or "no message", code=code, endpoint=endpoint)
