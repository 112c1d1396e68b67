"""The "Akool result" button on a task in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

from airflow_provider_akool import validation
from airflow_provider_akool.exceptions import AkoolValidationError

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    # Airflow 3.1 (the floor) has no TaskInstanceKey there: the get_link override's type is then Any.
    from airflow.sdk.types import TaskInstanceKey  # type: ignore[attr-defined, unused-ignore]

#: The XCom key under which submitting operators keep the result URL Akool gave.
RESULT_URL_XCOM_KEY = "akool_result_url"


class AkoolResultLink(BaseOperatorLink):
    """
    Link a task to the result file of its Akool job.

    Airflow asks the link in the worker whenever the task defers or ends, and keeps the answer for the UI.
    A submitting operator of this provider knows its result URL (``result_link_url``: from the submission,
    as reage gives the final address at once, or from the finished job), so the link reads it there, with
    no request at all, also before there is one (bad input, a background change still running: an XCom
    lookup would log "XCom not found" at error level). For any other operator the URL comes from the task's
    XCom ``akool_result_url``. Akool keeps results for 7 days, so an old link may lead to an expired file.
    """

    name = "Akool result"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the result URL of the task instance, or an empty string while there is none."""
        if hasattr(operator, "result_link_url"):
            return safe_link(operator.result_link_url)
        return safe_link(XCom.get_value(key=RESULT_URL_XCOM_KEY, ti_key=ti_key))


def safe_link(url: object) -> str:
    """Return ``url`` if it is an absolute http(s) URL, else "": ``javascript:`` never reaches the UI."""
    try:
        return validation.http_url("url", url)
    except AkoolValidationError:
        return ""
