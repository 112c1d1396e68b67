"""
OpenLineage of the submitting operators: DAGs run by ``dag.test()`` with the OpenLineage provider's own file
transport, and the events it wrote read back; and the same operators with the provider uninstalled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_akool.lineage import dataset_name, input_media, result_location
from tests.lineage.run_dag import SIGNATURE
from tests.support.connections import API_KEY

ROOT = Path(__file__).resolve().parents[2]


# --- Dataset names: no network ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (
            f"https://bucket.s3.amazonaws.com/in/face.jpg?{SIGNATURE}",
            ("https://bucket.s3.amazonaws.com", "/in/face.jpg"),
        ),
        ("http://user:pa55@127.0.0.1:8765/media/a.jpg#frag", ("http://127.0.0.1:8765", "/media/a.jpg")),
        ("HTTPS://CDN.Example/a.mp4", ("https://cdn.example", "/a.mp4")),
        ("https://cdn.example", ("https://cdn.example", "/")),
        ("http://[::1]:8080/x.png", ("http://[::1]:8080", "/x.png")),
        (f"s3://aws_default@bucket/prefix/a.jpg?{SIGNATURE}", ("s3://bucket", "prefix/a.jpg")),
        ("gs://bucket/a/b.png", ("gs://bucket", "a/b.png")),
        ("file:///data/out/a.jpg", ("file", "/data/out/a.jpg")),
        ("/data/out/a.jpg", ("file", "/data/out/a.jpg")),
        (Path("/data/out/b.jpg"), ("file", "/data/out/b.jpg")),
    ],
)
def test_a_dataset_is_named_without_query_fragment_or_credentials(
    location: Any, expected: tuple[str, str]
) -> None:
    assert dataset_name(location) == expected


@pytest.mark.parametrize("value", [None, 12, "", "   ", "http://", "https://[::1/x", ["https://a/b"]])
def test_what_is_not_a_location_has_no_dataset(value: Any) -> None:
    assert dataset_name(value) is None


_TOKEN = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=40)


@given(
    secret=_TOKEN,
    form=st.sampled_from(
        [
            "https://cdn.example/a.jpg?X-Amz-Signature={s}",
            "https://cdn.example/a.jpg?token={s}&x=1",
            "https://cdn.example/a.jpg#{s}",
            "https://{s}@cdn.example/a.jpg",
            "https://user:{s}@cdn.example:8443/a.jpg",
            "s3://{s}@bucket/key.jpg",
            "gs://bucket/key.jpg?GoogleAccessId=x&Signature={s}",
            "http://127.0.0.1:1/a.jpg?sig={s}#{s}",
        ]
    ),
)
def test_no_secret_of_a_signed_or_credentialed_url_reaches_a_dataset(secret: str, form: str) -> None:
    named = dataset_name(form.format(s=secret))
    assert named is not None
    assert secret not in "".join(named)


def test_inputs_are_the_media_parameters_and_face_paths_each_once() -> None:
    class Operator:
        modify_video = "https://cdn.example/clip.mp4?sig=1"
        target_image = [
            {"path": "https://cdn.example/face.jpg?sig=2", "opts": "1,2:3,4:5,6:7,8"},
            {"path": "https://cdn.example/face.jpg?sig=3", "opts": "9,2:3,4:5,6:7,8"},
            "not a face",
        ]

    assert input_media(Operator()) == [
        ("https://cdn.example", "/clip.mp4"),
        ("https://cdn.example", "/face.jpg"),
    ]


def test_the_output_is_the_kept_file_else_the_url_and_none_for_a_failed_job() -> None:
    job = {"id": "a" * 24, "status": "success", "url": "https://cdn.example/r.jpg?x=1", "output_path": None}
    assert result_location(job) == ("https://cdn.example", "/r.jpg")
    assert result_location({**job, "output_path": "s3://conn@bucket/out/r.jpg"}) == (
        "s3://bucket",
        "out/r.jpg",
    )
    assert result_location({**job, "status": "failed"}) is None
    assert result_location(None) is None


# --- Events from real DAG runs ------------------------------------------------------------------


@dataclass
class LineageRun:
    """What a DAG run in its own process printed (task states and values) and the events it wrote."""

    tasks: dict[str, Any]
    loaded: list[str]
    events: list[dict[str, Any]]
    raw: str
    output: str

    def event(self, task_id: str, kind: str) -> dict[str, Any]:
        found = [
            e
            for e in self.events
            if e["job"]["name"] == f"akool_lineage.{task_id}" and e["eventType"] == kind
        ]
        assert found, (
            f"no {kind} event of {task_id}: {[(e['job']['name'], e['eventType']) for e in self.events]}"
        )
        return found[-1]


def run_lineage_dag(emulator: Any, tmp: Path, *extra: str, tasks: str = "") -> LineageRun:
    events_file = tmp / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW_CONN_AKOOL_DEFAULT": json.dumps(
            {"conn_type": "akool", "host": emulator.url, "password": API_KEY}
        ),
        # The provider's own file transport, configured as a user would.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "akool-test",
    }
    argv = [sys.executable, "-m", "tests.lineage.run_dag", emulator.url, str(tmp / "kept"), *extra]
    if tasks:
        argv.append(f"--tasks={tasks}")
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    result = json.loads((tmp / "kept.result.json").read_text())
    raw = events_file.read_text() if events_file.exists() else ""
    events = [json.loads(event) for event in raw.splitlines() if event.strip()]
    return LineageRun(result["tasks"], result["openlineage_modules"], events, raw, output)


@pytest.fixture(scope="module")
def lineage(emulator: Any, airflow_db: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageRun]:
    emulator.client.reset()
    try:
        yield run_lineage_dag(emulator, tmp_path_factory.mktemp("lineage"))
    finally:
        emulator.client.reset()


def dataset(location: str) -> dict[str, Any]:
    named = dataset_name(location)
    assert named is not None
    return {"namespace": named[0], "name": named[1], "facets": {}}


def akool_facet(event: dict[str, Any]) -> dict[str, Any]:
    facet: dict[str, Any] = event["run"]["facets"]["akool"]
    return {key: value for key, value in facet.items() if not key.startswith("_")}


def test_the_start_event_reports_the_input_without_its_signature_and_no_output(
    lineage: LineageRun, emulator: Any
) -> None:
    start = lineage.event("image", "START")
    assert start["inputs"] == [dataset(f"{emulator.url}/media/samples/portrait.jpg")]
    assert start["outputs"] == []
    assert "akool" not in start["run"]["facets"]


def test_a_deferred_kept_job_reports_the_kept_file_and_the_akool_job(
    lineage: LineageRun, emulator: Any
) -> None:
    value = lineage.tasks["image"]["value"]
    assert lineage.tasks["image"]["state"] == "success"
    complete = lineage.event("image", "COMPLETE")
    assert complete["inputs"] == [dataset(f"{emulator.url}/media/samples/portrait.jpg")]
    assert complete["outputs"] == [{"namespace": "file", "name": value["output_path"], "facets": {}}]
    assert akool_facet(complete) == {
        "id": value["id"],
        "job_id": value["job_id"],
        "status": "success",
        "job_kind": "reage",
    }
    assert complete["run"]["facets"]["akool"]["_schemaURL"].endswith("docs/lineage.md#the-akool-run-facet")


def test_a_job_not_kept_reports_its_result_url_and_every_input(lineage: LineageRun, emulator: Any) -> None:
    samples = f"{emulator.url}/media/samples"
    video, background = lineage.tasks["video"]["value"], lineage.tasks["background"]["value"]
    complete = lineage.event("video", "COMPLETE")
    assert complete["inputs"] == [dataset(f"{samples}/clip.mp4"), dataset(f"{samples}/portrait.jpg")]
    assert complete["outputs"] == [dataset(video["url"])]
    assert akool_facet(complete) == {
        "id": video["id"],
        "job_id": video["job_id"],
        "status": "success",
        "job_kind": "reage",
    }
    complete = lineage.event("background", "COMPLETE")
    assert complete["inputs"] == [dataset(f"{samples}/product.png"), dataset(f"{samples}/portrait.jpg")]
    assert complete["outputs"] == [dataset(background["url"])]
    # No job_id for a background change: left out of the facet.
    assert akool_facet(complete) == {
        "id": background["id"],
        "status": "success",
        "job_kind": "background change",
    }


def test_a_failed_job_reports_its_id_and_status_and_no_output(lineage: LineageRun, emulator: Any) -> None:
    assert lineage.tasks["fails"]["state"] == "failed"
    fail = lineage.event("fails", "FAIL")
    assert fail["inputs"] == [dataset(f"{emulator.url}/media/samples/portrait-emulator-fail.jpg")]
    assert fail["outputs"] == []
    facet = akool_facet(fail)
    assert facet["status"] == "failed"
    assert len(facet["id"]) == 24
    assert facet["job_kind"] == "reage"


def test_no_signature_or_api_key_reaches_any_event(lineage: LineageRun) -> None:
    assert len(lineage.events) >= 8
    for secret in (*SIGNATURE.replace("&", "=").split("=")[1::2], API_KEY):
        assert secret not in lineage.raw


def test_the_operators_import_and_run_without_the_openlineage_extra(
    emulator: Any, airflow_db: Any, tmp_path: Path
) -> None:
    emulator.client.reset()
    try:
        run = run_lineage_dag(emulator, tmp_path, "--without-openlineage", tasks="image,fails")
    finally:
        emulator.client.reset()
    assert {task: run.tasks[task]["state"] for task in run.tasks} == {"image": "success", "fails": "failed"}
    assert Path(run.tasks["image"]["value"]["output_path"]).stat().st_size > 1000
    # Nothing of OpenLineage was imported, so no event was written although a transport is configured.
    assert run.loaded == []
    assert run.events == []
    assert "AkoolJobFailedError" in run.output
