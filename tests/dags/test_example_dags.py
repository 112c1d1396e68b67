"""The example DAGs in dags/: they parse without the network and run end to end against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.dag_runs import run_recorded
from tests.support.example_dags import parse_for_emulator, parse_offline

#: The example DAGs of reage, by dag_id, and their files.
EXAMPLES = {name: f"{name}.py" for name in ("akool_image_reage", "akool_video_reage", "akool_batch_reage")}


@pytest.fixture
def examples(akool_connection: Any, emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The example DAGs parsed for the emulator, as ``make demo`` sets them up."""
    return parse_for_emulator(emulator, monkeypatch, f"{tmp_path}/kept/")


def test_examples_parse_without_touching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    bag = parse_offline(monkeypatch)

    assert {Path(path).name for path in bag.import_errors} & set(EXAMPLES.values()) == set()
    assert set(EXAMPLES) <= set(bag.dag_ids)


def test_image_example_detects_reages_keeps_and_fetches_the_result(
    airflow_db: Any, examples: Any, emulator_client: Any
) -> None:
    run = run_recorded(examples.dags["akool_image_reage"], emulator_client)

    assert run.state == "success", run.states
    fetched = run.value("fetch_result")
    assert fetched["url"] == run.value("reage")["url"]
    assert fetched["bytes"] > 1000
    assert len(run.value("detect_faces")) == 2
    assert Path(run.value("reage")["output_path"]).stat().st_size == fetched["bytes"]


def test_video_example_waits_in_a_deferrable_sensor_and_keeps_the_video(
    airflow_db: Any, examples: Any, emulator: Any, emulator_client: Any, tmp_path: Path
) -> None:
    run = run_recorded(examples.dags["akool_video_reage"], emulator_client)

    assert run.state == "success", run.states
    submitted = run.value("submit_video_reage")
    assert submitted["status"] == "queued"
    (waited,) = run.value("wait_for_video")
    assert waited == {**submitted, "status": "success"}
    # Kept where the demo keeps results: the emulator's URL dies with it, the file does not.
    kept = Path(run.value("publish"))
    assert kept == tmp_path / "kept" / f"{submitted['id']}.mp4"
    assert kept.read_bytes() == requests.get(submitted["url"], timeout=10).content
    assert kept.stat().st_size == emulator.config.video_result_bytes
    assert examples.dags["akool_video_reage"].get_task("wait_for_video").deferrable is True


def test_batch_example_maps_deferrable_reage_over_the_list_and_keeps_the_results(
    airflow_db: Any, examples: Any, emulator: Any, emulator_client: Any, tmp_path: Path
) -> None:
    run = run_recorded(examples.dags["akool_batch_reage"], emulator_client)

    assert run.state == "success", run.states
    results = run.value("summarize")
    assert len(results) == 5
    assert [r["status"] for r in results] == ["success"] * 5
    for result in results:
        kept = Path(result["output_path"])
        assert kept.parent == tmp_path / "kept"
        assert kept.name == f"{result['id']}.jpg"
        assert kept.stat().st_size > 1000
    assert emulator_client.counts()["imgreage"] == 5
    # The balance was checked once, before the batch, and the batch then spent from it.
    assert run.value("check_credit") == emulator.config.credit
    assert emulator_client.counts()["quota_info"] == 1
    assert (
        emulator_client.account()["credit"] == emulator.config.credit - 5 * emulator.config.image_reage_credit
    )


def test_batch_example_stops_before_the_batch_when_the_credit_is_short(
    airflow_db: Any, examples: Any, emulator_client: Any
) -> None:
    emulator_client.set_account(credit=49)
    run = run_recorded(examples.dags["akool_batch_reage"], emulator_client)

    assert run.state == "failed"
    assert "the Akool credit balance is 49, below minimum_credit 50" in str(run.failure("check_credit"))
    assert run.tis[("check_credit", -1)].try_number == 1
    assert run.states[("list_images", -1)] == "upstream_failed"
    assert emulator_client.counts()["imgreage"] == 0
    assert emulator_client.counts()["detect"] == 0
