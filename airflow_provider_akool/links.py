"""The "Akool result" button on a task in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

from airflow_provider_akool import validation
from airflow_provider_akool.exceptions import AkoolValidationError

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: The XCom key under which submitting operators keep the result URL Akool gave.
RESULT_URL_XCOM_KEY = "akool_result_url"


class AkoolResultLink(BaseOperatorLink):
    """
    Link a task to the result file of its Akool job.

    The URL comes from the task's XCom (``akool_result_url``), pushed when the job was submitted (reage
    gives the final address at once) or when it finished (background change); no request is made to Akool.
    Akool keeps results for 7 days, so an old link may lead to an expired file.
    """

    name = "Akool result"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the result URL of the task instance, or an empty string while there is none."""
        url = XCom.get_value(key=RESULT_URL_XCOM_KEY, ti_key=ti_key)
        return safe_link(url)


def safe_link(url: object) -> str:
    """Return ``url`` if it is an absolute http(s) URL, else "": ``javascript:`` never reaches the UI."""
    try:
        return validation.http_url("url", url)
    except AkoolValidationError:
        return ""
