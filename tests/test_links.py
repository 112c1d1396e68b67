"""The "Akool result" link, as the task runner resolves it after a run against the emulator."""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag

from airflow_provider_akool.links import AkoolResultLink
from airflow_provider_akool.operators.reage import AkoolImageReageOperator, AkoolVideoReageOperator
from tests.operators.test_reage import START, run_recorded, sample


def test_submitting_operators_carry_the_link() -> None:
    for operator in (AkoolImageReageOperator, AkoolVideoReageOperator):
        (link,) = operator.operator_extra_links
        assert isinstance(link, AkoolResultLink)
        assert link.name == "Akool result"


def test_the_link_leads_to_the_result_and_is_empty_without_one(
    airflow_db: Any, akool_connection: Any, emulator: Any, emulator_client: Any
) -> None:
    @dag(dag_id="akool_links", schedule=None, start_date=START)
    def akool_links() -> None:
        AkoolImageReageOperator(
            task_id="reage", modify_image=sample(emulator, "portrait.jpg"), face_reage=3, deferrable=True
        )
        AkoolImageReageOperator(
            task_id="refused", modify_image=sample(emulator, "portrait.jpg"), face_reage=99
        )

    run = run_recorded(akool_links(), emulator_client)

    # After each run the task runner stores what get_link returned under the link's XCom key, which is
    # what the UI shows; get_link itself read the URL from XCom.
    url = run.value("reage")["url"]
    assert url.startswith(emulator.url)
    assert run.value("reage", key=AkoolResultLink().xcom_key) == url
    assert run.value("refused", key=AkoolResultLink().xcom_key) == ""
