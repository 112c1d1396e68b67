"""The "Akool result" link, as the task runner resolves it after a run against the emulator."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from airflow.sdk import dag

from airflow_provider_akool.links import AkoolResultLink
from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
from airflow_provider_akool.operators.reage import AkoolImageReageOperator, AkoolVideoReageOperator
from tests.support.dag_runs import START, run_recorded
from tests.support.samples import sample


def test_submitting_operators_carry_the_link() -> None:
    for operator in (AkoolImageReageOperator, AkoolVideoReageOperator):
        (link,) = operator.operator_extra_links
        assert isinstance(link, AkoolResultLink)
        assert link.name == "Akool result"


def test_the_link_leads_to_the_result_and_is_empty_without_one(
    airflow_db: Any,
    akool_connection: Any,
    emulator: Any,
    emulator_client: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    @dag(dag_id="akool_links", schedule=None, start_date=START)
    def akool_links() -> None:
        AkoolImageReageOperator(
            task_id="reage", modify_image=sample(emulator, "portrait.jpg"), face_reage=3, deferrable=True
        )
        AkoolImageReageOperator(
            task_id="refused", modify_image=sample(emulator, "portrait.jpg"), face_reage=99
        )
        # Background change learns its result URL only when the job is done: the task defers without one.
        AkoolBackgroundChangeOperator(
            task_id="background",
            origin_img=sample(emulator, "product.png"),
            canvas_size="400x400",
            modify_origin_img_size="200x200",
            overlay_origin_x=100,
            overlay_origin_y=100,
            color_code="#aafbe3",
            poll_interval=0.5,
            deferrable=True,
        )

    caplog.set_level(logging.INFO)
    run = run_recorded(akool_links(), emulator_client)
    out, err = capfd.readouterr()

    # After each run the task runner stores what get_link returned under the link's XCom key, which is
    # what the UI shows; get_link itself read the URL from XCom.
    url = run.value("reage")["url"]
    assert url.startswith(emulator.url)
    assert run.value("reage", key=AkoolResultLink().xcom_key) == url
    assert run.value("refused", key=AkoolResultLink().xcom_key) == ""
    assert run.value("background", key=AkoolResultLink().xcom_key) == run.value("background")["url"]
    # Airflow asks every link for its URL when a task defers, fails or succeeds: a link without a URL yet
    # is normal, not an error, and must not say "XCom not found" at error level (seen in make demo).
    console = "\n".join((out, err, caplog.text))
    assert "XCom not found" not in console
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m for m in errors if "refused" not in m and "face_reage" not in m] == []
