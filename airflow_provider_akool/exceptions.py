"""
One exception class per way an Akool call can fail.

Akool answers HTTP 200 with a business ``code`` in the body; :func:`error_for_code` turns a code into
its class, so callers choose what to do by class (or by ``code``), never by matching message text.
Every exception carries the code, Akool's message and the endpoint, and never a credential: the
messages are built only from the reply and the endpoint's name.

Each class states two facts, read by class, never by message:

- ``retryable``: the same request may succeed if sent again later (1005, 1015, HTTP 429, 5xx, a lost
  connection). The hook's retry rule (:func:`~airflow_provider_akool.protocol.is_retryable`) and the
  waits' backoff read it; a submission is still resent only when the failed attempt surely created nothing.
- ``task_retry_can_fix``: whether a retry of the Airflow task can fix it at all. Classes where it is False
  are also ``AirflowFailException`` subclasses, so the task fails at once without using its retries (bad
  input, a refused account, an input Akool will never take); the fact is derived from that base class, so
  the two can never disagree.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk.exceptions import AirflowException


class AkoolError(AirflowException):
    """
    Base class of every error raised by this provider.

    :param message: what went wrong, in words a user can act on.
    :param code: Akool's business code, where the reply had one.
    :param endpoint: the logical Akool endpoint, such as ``imgreage`` or ``listbyids``.
    """

    #: The same request may succeed if sent again later (see the module's docstring).
    retryable: ClassVar[bool] = False
    #: A retry of the task can fix it; False for ``AirflowFailException`` subclasses (set by the class).
    task_retry_can_fix: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # Derived, not declared: Airflow decides by the base class, so the fact must follow it.
        cls.task_retry_can_fix = not issubclass(cls, AirflowFailException)

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
    """
    The reply could not be understood: not JSON, an HTML error page, a required field missing, or larger
    than the hook reads (:data:`~airflow_provider_akool.protocol.MAX_REPLY_BYTES`).

    Not resent by the hook (the same reply would likely come back at once), but a wait backs off and polls
    again, within its error budget: a gateway's maintenance page passes.
    """


class AkoolUnreadableResultError(AkoolResponseError):
    """
    The entry of one id in a ``listbyids`` reply could not be read: a status outside 1..4, a ``url`` or
    ``job_id`` that is not a string, or the same ``_id`` twice with different contents.

    Only the wait for that id gets it; the other ids of the same reply keep their results.

    :param akool_id: the ``_id`` whose entry could not be read.
    """

    def __init__(self, message: str, *, akool_id: str, endpoint: str | None = None) -> None:
        self.akool_id = akool_id
        super().__init__(message, endpoint=endpoint)


class AkoolPartialReplyError(AkoolUnreadableResultError):
    """
    Some entries of a ``listbyids`` reply asked for could not be read; the others could.

    Raised by :meth:`~airflow_provider_akool.hooks.akool.AkoolHook.get_reage_results` (its message names
    the ids), and by the reage fetch of the shared poller, which hands ``found`` to the waits of the other
    ids and each error of ``errors`` only to the wait of its id. An ``AkoolUnreadableResultError`` too
    (``akool_id`` is the first unreadable id), so a wait in the worker fails with the same class as one in
    the triggerer.

    :param found: the readable results of the ids asked for, by ``_id``.
    :param errors: the error of each id whose entry could not be read.
    """

    def __init__(
        self,
        message: str,
        *,
        found: dict[str, object] | None = None,
        errors: dict[str, AkoolUnreadableResultError] | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.found = dict(found or {})
        self.errors = dict(errors or {})
        super().__init__(message, akool_id=next(iter(self.errors), ""), endpoint=endpoint)


class AkoolServerError(AkoolError):
    """The server or a gateway in front of it answered with an HTTP 5xx status."""

    retryable = True

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

    retryable = True

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
#
# Akool's whole error table (docs/reliability.md has it with both facts per code). Classes that fail the
# task at once are refusals of the account or of the input that no later try changes by itself.


class AkoolApiError(AkoolError):
    """Akool answered with a business code other than 1000 (a code not in the table raises this class)."""


class AkoolInvalidParameterError(AkoolApiError, AirflowFailException):
    """1003: a parameter is wrong or missing (or the account does not support the feature)."""


class AkoolAccountError(AkoolApiError, AirflowFailException):
    """
    The account cannot do this until a person acts: banned, unverified, unpaid, out of credit or quota,
    unsubscribed. Fails the task without using its retries, and ends every wait of the connection.
    """


class AkoolVerificationRequiredError(AkoolAccountError):
    """1004: the account requires verification."""


class AkoolRateLimitError(AkoolApiError):
    """
    1005 "Operation is too frequent", or HTTP 429 from a gateway.

    :param retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
    """

    retryable = True

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


class AkoolQuotaExceededError(AkoolAccountError):
    """1006: the account's quota is not enough."""


class AkoolTooManyFacesError(AkoolApiError, AirflowFailException):
    """1007: more than 8 faces in one request."""


class AkoolNotFoundError(AkoolApiError):
    """1008: the content does not exist (a wait judges it by its not-found grace)."""


class AkoolPermissionDeniedError(AkoolApiError, AirflowFailException):
    """1009: permission denied."""


class AkoolContentNotOperableError(AkoolApiError, AirflowFailException):
    """1010: this content cannot be operated."""


class AkoolContentAlreadyOperatedError(AkoolApiError, AirflowFailException):
    """1011: the content has already been operated."""


class AkoolResourceNotFoundError(AkoolNotFoundError):
    """1014: the resource does not exist (treated as 1008)."""


class AkoolVideoProcessingError(AkoolApiError):
    """
    1015: video processing error; Akool's current docs say "retry later".

    Retryable: the hook resends the same request, a submission too, since an error code is Akool's answer
    (not a lost reply) and its advice is to send it again; a wait backs off and polls again.
    """

    retryable = True


class AkoolFaceSwapError(AkoolApiError):
    """1016: face swapping error (a processing failure: like a failed job, a task retry may pass)."""


class AkoolAuthError(AkoolApiError):
    """Authentication failed: the key, the client credentials or the token are not accepted."""


class AkoolInvalidTokenError(AkoolAuthError):
    """
    1101: invalid authorization, or the token has expired.

    The hook renews a token once on its own; a task retry is kept, because it reads the connection again
    and a rotated key is fixed by updating the connection.
    """


class AkoolMissingAuthError(AkoolAuthError, AirflowFailException):
    """1102: no authorization was sent."""


class AkoolPaymentRequiredError(AkoolAccountError):
    """1103: the account is not paid or its payment is overdue."""


class AkoolInsufficientCreditError(AkoolAccountError):
    """1104: the account's credit balance is not enough."""


class AkoolImageProcessingError(AkoolApiError):
    """1108: image processing error (a processing failure: like a failed job, a task retry may pass)."""


class AkoolAccountNotFoundError(AkoolAuthError, AkoolAccountError):
    """1109: the account does not exist."""


class AkoolAccountBannedError(AkoolAccountError):
    """1200: the account has been banned."""


class AkoolVideoCreationError(AkoolApiError):
    """1205: error creating the video (a processing failure: like a failed job, a task retry may pass)."""


class AkoolBackgroundChangeError(AkoolApiError):
    """1206: the background change failed while processing."""


class AkoolVideoTooLargeError(AkoolApiError, AirflowFailException):
    """1207: the video exceeds the size Akool accepts."""


class AkoolVideoParseError(AkoolApiError, AirflowFailException):
    """1208: the video could not be parsed."""


class AkoolUnsupportedVideoEncodingError(AkoolApiError, AirflowFailException):
    """1209: the video's encoding is not supported."""


class AkoolSubscriptionRequiredError(AkoolAccountError):
    """1213: the feature requires a subscription."""


class AkoolNotSubscribedError(AkoolSubscriptionRequiredError):
    """1221: the account is not subscribed."""


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


class AkoolResultHostError(AkoolError, AirflowFailException):
    """
    A result URL (or a redirect of its download) names a loopback, private or link-local address, and the
    connection's own host is not one: the worker refuses to download it, before any request.

    A retry would be refused the same way. See :mod:`airflow_provider_akool.result_hosts`.
    """


class AkoolValidationError(AkoolError, AirflowFailException, ValueError):
    """
    An operator, sensor or hook argument is not of the allowed form; raised before any request.

    Fails the task at once: a typo does not fix itself between tries.
    """


class AkoolCreditTooLowError(AkoolError, AirflowFailException):
    """
    The account's credit balance is below the ``minimum_credit`` a check asked for; nothing was submitted.

    Raised by :class:`~airflow_provider_akool.operators.credit.AkoolCheckCreditOperator`. The task fails
    without using its retries: the balance does not grow by itself within a retry delay.

    :param credit: the balance Akool reported.
    :param minimum_credit: the threshold it was compared with.
    """

    def __init__(
        self, message: str, *, credit: float, minimum_credit: float, endpoint: str | None = None
    ) -> None:
        self.credit = credit
        self.minimum_credit = minimum_credit
        super().__init__(message, endpoint=endpoint)


class AkoolInputError(AkoolError):
    """
    A media input given as an object-storage URI could not be read or signed, found before the submission.

    A missing object, a folder, credentials the store refuses, a store that cannot be reached. Nothing was
    submitted or paid. Task retries apply: the object may be written, or the connection fixed, meanwhile.
    """


# --- Keeping results (``output_path``) -------------------------------------------------------------


class AkoolOutputPathError(AkoolValidationError, AirflowFailException):
    """
    ``output_path`` cannot receive a result, found before any request: nothing was submitted or paid.

    A scheme no installed fsspec backend serves, a connection that does not exist, a path under a regular
    file, a folder that cannot be written, or one file name for every index of a mapped task. A retry
    cannot fix it, so the task fails without using its retries.
    """


class _KeepingError(AkoolError):
    """
    A result could not be kept at ``output_path``: where, and where the result still is on Akool.

    :param path: the file concerned.
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


class AkoolOutputExistsError(_KeepingError, AirflowFailException):
    """
    The file ``output_path`` names already exists, and ``overwrite`` is False: it was not replaced.

    Raised before the submission when the name is known then (nothing was paid), or when keeping a
    result that another task wrote first; then ``url`` says where the result still is on Akool and
    ``expires_at`` until when. The task fails without using its retries: a retry would meet the same file.

    :param path: the file that already exists.
    :param url: the result's URL on Akool, when a job was paid for; None before the submission.
    :param expires_at: until when Akool keeps that result (ISO 8601, UTC), when there is one.
    """


class AkoolOutputError(_KeepingError):
    """
    The result of a job that succeeded (and was paid for) could not be written to ``output_path``.

    The disk is full, a permission changed, a folder became a file... The message says where the result
    still is on Akool and until when. It keeps the task's retries: on Airflow 3.3+ a retry resumes the
    recorded job and keeps its result again without paying for a new one.

    :param path: where the result was to be kept.
    :param url: the result's URL on Akool.
    :param expires_at: until when Akool keeps it (ISO 8601, UTC).
    """


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


#: Akool's business codes (the whole table of its error-code page) and the class each one raises.
ERROR_CODES: dict[int, type[AkoolApiError]] = {
    1003: AkoolInvalidParameterError,
    1004: AkoolVerificationRequiredError,
    1005: AkoolRateLimitError,
    1006: AkoolQuotaExceededError,
    1007: AkoolTooManyFacesError,
    1008: AkoolNotFoundError,
    1009: AkoolPermissionDeniedError,
    1010: AkoolContentNotOperableError,
    1011: AkoolContentAlreadyOperatedError,
    1014: AkoolResourceNotFoundError,
    1015: AkoolVideoProcessingError,
    1016: AkoolFaceSwapError,
    1101: AkoolInvalidTokenError,
    1102: AkoolMissingAuthError,
    1103: AkoolPaymentRequiredError,
    1104: AkoolInsufficientCreditError,
    1108: AkoolImageProcessingError,
    1109: AkoolAccountNotFoundError,
    1200: AkoolAccountBannedError,
    1205: AkoolVideoCreationError,
    1206: AkoolBackgroundChangeError,
    1207: AkoolVideoTooLargeError,
    1208: AkoolVideoParseError,
    1209: AkoolUnsupportedVideoEncodingError,
    1213: AkoolSubscriptionRequiredError,
    1221: AkoolNotSubscribedError,
}


def error_for_code(code: int, message: str, endpoint: str | None = None) -> AkoolApiError:
    """Return the exception for an Akool business code (``AkoolApiError`` for codes not documented)."""
    cls = ERROR_CODES.get(code, AkoolApiError)
    return cls(message or "no message", code=code, endpoint=endpoint)
