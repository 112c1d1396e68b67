"""
The background-change operator run by ``dag.test()`` against the emulator, deferrable and not: the four
combinations of the seed, failure with Akool's reasons, the deadline (no cancel endpoint), no wait,
``output_path`` on a local folder and on ``memory://``, the asset event after the file is kept, and bad
input before any request.

As in ``test_reage``, one shared run (a module fixture) holds most outcomes, because each run costs seconds;
every test still names one behaviour and checks it. The emulator really composes the image, so the kept
files show what was sent: their size is ``canvas_size`` and their pixels show the colour, the template and
where each layer went.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import Asset, dag, task
from PIL import Image

from airflow_provider_akool.emulator.media import color_of
from airflow_provider_akool.exceptions import (
    AkoolConnectionError,
    AkoolJobFailedError,
    AkoolJobTimeoutError,
    AkoolOutputPathError,
    AkoolValidationError,
)
from airflow_provider_akool.operators.background_change import AkoolBackgroundChangeOperator
from airflow_provider_akool.sensors.image_result import AkoolImageResultSensor
from airflow_provider_akool.triggers.image_result import AkoolImageResultTrigger
from tests.support.connections import API_KEY
from tests.support.dag_runs import POLL, START, RecordedRun, run_recorded
from tests.support.samples import sample
from tests.support.task_context import StubTaskInstance

RESULTS = Asset(name="akool_test_background_results", uri="akool-test://background-change/results")
CANVAS = (120, 96)
WHITE = (255, 255, 255)
TEMPLATE = "backdrop-faces-0.jpg"  # no face: a template of one colour, color_of(TEMPLATE)
FOREGROUND = "product.png"  # transparent around the face it shows


def combinations(emulator: Any) -> dict[str, tuple[dict[str, Any], list[tuple[tuple[int, int], Any]]]]:
    """
    The seed's four combinations on a 120x96 canvas, by name: the kwargs, and pixels with their colour.

    The geometry follows the seed's examples, scaled down; the pixels checked lie outside the foreground
    (which only shows a face), so they show the colour, the template and where the template went.
    """
    origin, template = sample(emulator, FOREGROUND), sample(emulator, TEMPLATE)
    backdrop = color_of(TEMPLATE)
    return {
        "template": (
            {
                "origin_img": origin,
                "modify_origin_img_size": "40x30",
                "overlay_origin_x": 70,
                "overlay_origin_y": 60,
                "template_url": template,
                "modify_template_size": "110x86",
                "overlay_template_x": 5,
                "overlay_template_y": 5,
            },
            # White outside the template (no colour), the template inside it.
            [((1, 1), WHITE), ((118, 94), WHITE), ((20, 20), backdrop), ((110, 10), backdrop)],
        ),
        "colour": (
            {
                "origin_img": origin,
                "modify_origin_img_size": (30, 40),
                "overlay_origin_x": "8",  # a rendered template is a string: accepted, sent as 8
                "overlay_origin_y": 0,
                "color_code": "#C9AAFB",
            },
            [((1, 90), (0xC9, 0xAA, 0xFB)), ((119, 95), (0xC9, 0xAA, 0xFB)), ((100, 5), (0xC9, 0xAA, 0xFB))],
        ),
        "template_and_colour": (
            {
                "origin_img": origin,
                "modify_origin_img_size": [40, 50],
                "overlay_origin_x": -7,
                "overlay_origin_y": -8,
                "template_url": template,
                "modify_template_size": (60, 100),
                "overlay_template_x": 64,
                "overlay_template_y": -2,
                "color_code": "#aafbe3",
            },
            # The colour on the left (the foreground ends at y=42), the template on the right half.
            [((30, 80), (0xAA, 0xFB, 0xE3)), ((62, 50), (0xAA, 0xFB, 0xE3)), ((100, 50), backdrop)],
        ),
        "neither": (
            {
                "origin_img": origin,
                "modify_origin_img_size": "50x40",
                "overlay_origin_x": 35,
                "overlay_origin_y": 28,
                "remove_bg": "true",  # accepted and ignored by the emulator: the samples are cut-outs
            },
            [((1, 1), WHITE), ((119, 95), WHITE), ((60, 5), WHITE)],
        ),
    }


COMBINATIONS = ("template", "colour", "template_and_colour", "neither")


# --- One run with every outcome ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kept")


@pytest.fixture(scope="module")
def memory_root() -> Iterator[str]:
    """A folder of fsspec's in-memory filesystem (one store per process: dag.test() runs tasks here)."""
    root = f"akool-bg-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(scope="module")
def outcomes(module_emulator: Any, kept: Path, memory_root: str) -> RecordedRun:
    emulator = module_emulator
    layouts = [kwargs for kwargs, _ in (combinations(emulator)[name] for name in COMBINATIONS)]
    origin = sample(emulator, FOREGROUND)
    small: dict[str, Any] = {"origin_img": origin, "canvas_size": "64x48", "modify_origin_img_size": "32x24"}
    at_origin: dict[str, Any] = {"overlay_origin_x": 0, "overlay_origin_y": 0}
    # A file where the keep step needs a folder: found before the submission, nothing is paid for.
    blocker = kept / "blocker"
    blocker.write_text("a file, not a folder")

    @dag(dag_id="background_change_outcomes", schedule=None, start_date=START, params={"width": 120})
    def background_change_outcomes() -> None:
        @task
        def list_layouts() -> list[dict[str, Any]]:
            return layouts

        planned = list_layouts()
        for mode, deferrable in (("sync", False), ("defer", True)):
            waits: dict[str, Any] = {"poll_interval": POLL, "deferrable": deferrable}
            # Success: the four combinations, mapped with expand_kwargs; the canvas from a template.
            AkoolBackgroundChangeOperator.partial(
                task_id=f"combos_{mode}",
                canvas_size="{{ params.width }}x96",
                output_path=f"{kept}/{mode}/",
                outlets=[RESULTS],
                **waits,
            ).expand_kwargs(planned)
            # Failure (status 4): the marker in the foreground, then in the template.
            marked: dict[str, Any] = {"origin_img": sample(emulator, "product-emulator-fail.png")}
            if deferrable:
                marked = {"template_url": sample(emulator, "backdrop-emulator-fail.jpg")}
            AkoolBackgroundChangeOperator(
                task_id=f"fails_{mode}", **{**small, **at_origin, **marked}, **waits
            )
            # The deadline: the job stays processing.
            AkoolBackgroundChangeOperator(
                task_id=f"deadline_{mode}",
                **{**small, **at_origin, "origin_img": sample(emulator, "product-emulator-stuck.png")},
                timeout=1,
                **waits,
            )
        # A non-local filesystem, with a full file name from a template.
        AkoolBackgroundChangeOperator(
            task_id="to_memory",
            **small,
            **at_origin,
            color_code="#102030",
            output_path=f"memory://{memory_root}/" + "{{ ti.task_id }}.png",
            outlets=[RESULTS],
            deferrable=True,
            poll_interval=POLL,
        )
        # output_path lies under a file: refused before submitting; no file, no asset event.
        AkoolBackgroundChangeOperator(
            task_id="keep_fails",
            **small,
            **at_origin,
            output_path=f"{blocker}/kept/",
            outlets=[RESULTS],
            poll_interval=POLL,
        )
        # Submit without waiting; a sensor waits for the id afterwards.
        submitted = AkoolBackgroundChangeOperator(
            task_id="no_wait",
            **small,
            **at_origin,
            output_path=f"{kept}/no_wait/",
            wait_for_completion=False,
        )
        AkoolImageResultSensor(task_id="wait_for_it", image_model_id=submitted.output, poke_interval=POLL)

    return run_recorded(background_change_outcomes(), emulator.client)


def asset_events(run: RecordedRun) -> list[dict[str, Any]]:
    """The asset events the run emitted, from the metadata database."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    ti = next(iter(run.tis.values()))
    with create_session() as session:
        rows = session.execute(
            select(AssetEvent, AssetModel.uri)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_dag_id == ti.dag_id, AssetEvent.source_run_id == ti.run_id)
        ).all()
        return [
            {
                "uri": uri,
                "task_id": event.source_task_id,
                "map_index": event.source_map_index,
                "extra": dict(event.extra or {}),
                "at": event.timestamp.timestamp(),
            }
            for event, uri in rows
        ]


@pytest.mark.parametrize("mode", ["sync", "defer"])
@pytest.mark.parametrize("index", range(4), ids=COMBINATIONS)
def test_each_combination_of_the_seed_composes_what_was_asked(
    outcomes: RecordedRun, module_emulator: Any, kept: Path, mode: str, index: int
) -> None:
    result = outcomes.value(f"combos_{mode}", index)
    _, pixels = combinations(module_emulator)[COMBINATIONS[index]]

    assert outcomes.states[(f"combos_{mode}", index)] == "success"
    assert set(result) == {"id", "job_id", "status", "url", "output_path"}
    assert result["status"] == "success"
    assert result["job_id"] is None
    assert result["url"].endswith(f"/media/results/{result['id']}.png")
    assert result["output_path"] == str(kept / mode / f"{result['id']}.png")
    with Image.open(result["output_path"]) as image:
        assert image.size == CANVAS
        rgb = image.convert("RGB")
        assert {xy: rgb.getpixel(xy) for xy, _ in pixels} == dict(pixels)
    assert outcomes.job(result["id"]) == {
        "job_id": None,
        "kind": "bg_replace",
        "status": 3,
        "webhook_url": None,
        "cancelled": False,
    }
    # The id and the result are in XCom for the UI link.
    assert outcomes.value(f"combos_{mode}", index, key="akool_id") == result["id"]
    assert outcomes.value(f"combos_{mode}", index, key="akool_result_url") == result["url"]


def test_templates_are_rendered_then_validated(outcomes: RecordedRun) -> None:
    rendered = outcomes.rendered("combos_sync", 1)

    # "{{ params.width }}x96" rendered to "120x96", which passed validation (the images are 120x96).
    assert rendered["canvas_size"] == "120x96"
    assert rendered["overlay_origin_x"] == "8"
    assert rendered["color_code"] == "#C9AAFB"


def test_the_sync_wait_polls_and_the_deferred_one_hands_over_to_the_trigger(outcomes: RecordedRun) -> None:
    # Four per mode succeeded; the deferrable ones went through the trigger (dag.test runs it in line).
    for mode in ("sync", "defer"):
        assert [outcomes.states[(f"combos_{mode}", i)] for i in range(4)] == ["success"] * 4
    assert outcomes.ledger["counts"]["job_del"] == 0


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_a_failed_job_fails_the_task_with_akools_reasons(outcomes: RecordedRun, mode: str) -> None:
    error = outcomes.failure(f"fails_{mode}")
    akool_id = outcomes.value(f"fails_{mode}", key="akool_id")

    assert isinstance(error, AkoolJobFailedError)
    assert error.akool_id == akool_id
    assert error.reasons == [
        {
            "code": 1206,
            "message": "background change processing error: an input carries the emulator-fail marker",
        }
    ]
    assert akool_id in str(error)
    assert "status 4" in str(error)
    assert "emulator-fail marker" in str(error)
    assert outcomes.job(akool_id)["status"] == 4


@pytest.mark.parametrize("mode", ["sync", "defer"])
def test_the_deadline_fails_saying_the_job_cannot_be_cancelled(outcomes: RecordedRun, mode: str) -> None:
    error = outcomes.failure(f"deadline_{mode}")
    akool_id = outcomes.value(f"deadline_{mode}", key="akool_id")

    assert isinstance(error, AkoolJobTimeoutError)
    assert "did not finish within 1 s" in str(error)
    assert f"Akool cannot cancel a background change job: job {akool_id} may still finish" in str(error)
    # Nothing was cancelled: the job runs on at Akool.
    assert outcomes.job(akool_id)["status"] == 2
    assert outcomes.job(akool_id)["cancelled"] is False


def test_output_path_on_a_non_local_filesystem_with_a_templated_name(
    outcomes: RecordedRun, memory_root: str
) -> None:
    result = outcomes.value("to_memory")
    fs = fsspec.filesystem("memory")

    assert result["status"] == "success"
    # Airflow 3.1's ObjectStoragePath spells the same location memory:///<root>/... (an absolute path).
    assert result["output_path"].replace(":///", "://") == f"memory://{memory_root}/to_memory.png"
    with fs.open(f"{memory_root}/to_memory.png", "rb") as kept_file, Image.open(kept_file) as image:
        assert image.size == (64, 48)
        assert image.convert("RGB").getpixel((63, 47)) == (0x10, 0x20, 0x30)
    # Only the result: the temporary of the atomic write is gone.
    assert fs.ls(memory_root, detail=False) == [f"/{memory_root}/to_memory.png"]


def test_an_output_path_under_a_file_fails_before_submitting_and_leaves_no_file(
    outcomes: RecordedRun, kept: Path
) -> None:
    error = outcomes.failure("keep_fails")

    assert isinstance(error, AkoolOutputPathError)
    assert "output_path" in str(error)
    assert "is a file, not a folder" in str(error)
    # Nothing was submitted, so nothing was paid for.
    assert outcomes.value("keep_fails", key="akool_id") is None
    assert (kept / "blocker").read_text() == "a file, not a folder"


def test_asset_events_are_emitted_after_the_files_are_kept(outcomes: RecordedRun, kept: Path) -> None:
    events = asset_events(outcomes)

    # One per successful task with the outlet: four combinations per mode and the memory one; none for
    # the task whose keep failed.
    assert sorted((e["task_id"], e["map_index"]) for e in events) == sorted(
        [(f"combos_{mode}", i) for mode in ("sync", "defer") for i in range(4)] + [("to_memory", -1)]
    )
    assert {e["uri"] for e in events} == {RESULTS.uri}
    for event in events:
        result = outcomes.value(event["task_id"], event["map_index"])
        assert event["extra"] == {
            "id": result["id"],
            "status": "success",
            "url": result["url"],
            "output_path": result["output_path"],
        }
        if event["task_id"] != "to_memory":
            # The event came after the file was complete under its final name.
            assert event["at"] >= Path(result["output_path"]).stat().st_mtime


def test_no_wait_returns_at_submit_and_keeps_nothing(outcomes: RecordedRun, kept: Path) -> None:
    submitted = outcomes.value("no_wait")

    assert submitted["status"] == "queued"
    assert submitted["url"] is None
    assert submitted["output_path"] is None
    assert not (kept / "no_wait").exists()
    # The sensor downstream waited for the same job to succeed.
    assert outcomes.value("wait_for_it")["id"] == submitted["id"]
    assert outcomes.value("wait_for_it")["status"] == "success"


def test_no_secret_reaches_xcom_or_an_error(outcomes: RecordedRun) -> None:
    assert outcomes.places_holding(API_KEY) == []


# --- Bad input: the task fails before any request ------------------------------------------------------


def test_bad_input_fails_before_any_request_naming_the_parameter(
    module_emulator: Any, emulator_client: Any
) -> None:
    emulator = module_emulator
    url = sample(emulator, FOREGROUND)
    template = sample(emulator, TEMPLATE)
    expected: dict[str, tuple[str, dict[str, Any]]] = {
        "origin_img": ("origin_img must be", {"origin_img": "memory://bucket/photo.png"}),
        "canvas_size": ("canvas_size must be", {"canvas_size": "3840*3840"}),
        "canvas_zero": ("canvas_size must be", {"canvas_size": (0, 3840)}),
        "canvas_template": ("canvas_size must be", {"canvas_size": "{{ params.canvas }}"}),
        "origin_size": ("modify_origin_img_size must be", {"modify_origin_img_size": "big"}),
        "origin_x": ("overlay_origin_x must be", {"overlay_origin_x": "left"}),
        "origin_y": ("overlay_origin_y must be", {"overlay_origin_y": 1.5}),
        "colour": ("color_code must be", {"color_code": "red"}),
        "template_url": ("template_url must be", {"template_url": "not a url"}),
        "template_size": (
            "modify_template_size must be",
            {"template_url": template, "modify_template_size": "3830 by 3830"},
        ),
        "template_x": ("overlay_template_x must be", {"template_url": template, "overlay_template_x": "x"}),
        "template_y": ("overlay_template_y must be", {"template_url": template, "overlay_template_y": True}),
        "size_alone": (
            "modify_template_size may only be given with template_url",
            {"modify_template_size": "8x8"},
        ),
        "x_alone": ("overlay_template_x may only be given with template_url", {"overlay_template_x": 5}),
        "y_alone": ("overlay_template_y may only be given with template_url", {"overlay_template_y": 5}),
        "remove_bg": ("remove_bg must be", {"remove_bg": "yes"}),
        "webhook": ("webhook_url must be", {"webhook_url": "not-a-url"}),
        "poll": ("poll_interval must be", {"poll_interval": 0}),
        "timeout": ("timeout must be", {"timeout": "soon"}),
        "output": ("output_path must be", {"output_path": " "}),
    }

    @dag(dag_id="background_change_bad_input", schedule=None, start_date=START, params={"canvas": "wide"})
    def background_change_bad_input() -> None:
        # Deferrable and not in turn: both validate in execute(), before the first request.
        for index, (name, (_, change)) in enumerate(expected.items()):
            kwargs: dict[str, Any] = {
                "origin_img": url,
                "canvas_size": "64x48",
                "modify_origin_img_size": "32x24",
                "overlay_origin_x": 0,
                "overlay_origin_y": 0,
                "deferrable": index % 2 == 1,
            }
            AkoolBackgroundChangeOperator(task_id=name, **{**kwargs, **change})

    run = run_recorded(background_change_bad_input(), emulator_client)

    for task_id, (message, _) in expected.items():
        error = run.failure(task_id)
        assert isinstance(error, AkoolValidationError), (task_id, error)
        assert message in str(error), (task_id, error)
    assert "got 'wide'" in str(run.failure("canvas_template"))
    assert run.ledger["requests"] == []
    assert not any(run.ledger["counts"].values())


# --- Without a DAG run: deferral, a quick job, an interrupted download, the class itself ---------------


def operator_for(emulator: Any, origin: str = FOREGROUND, **kwargs: Any) -> AkoolBackgroundChangeOperator:
    return AkoolBackgroundChangeOperator(
        task_id="change",
        origin_img=sample(emulator, origin),
        canvas_size=(64, 48),
        modify_origin_img_size="32x24",
        overlay_origin_x=0,
        overlay_origin_y=0,
        color_code="#aafbe3",
        **kwargs,
    )


def context_of(ti: StubTaskInstance) -> Any:
    """A task context with just the task instance, for ``execute()`` outside a DAG run."""
    return {"ti": ti}


def test_deferring_hands_the_trigger_everything_it_needs(
    akool_connection: Any, emulator: Any, emulator_client: Any
) -> None:
    operator = operator_for(
        emulator, "product-emulator-stuck.png", poll_interval=POLL, deferrable=True, timeout=600
    )
    ti = StubTaskInstance()

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context_of(ti))

    akool_id = ti.pushed["akool_id"]
    assert ti.pushed["akool_job_id"] is None
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is None
    trigger = deferred.value.trigger
    assert isinstance(trigger, AkoolImageResultTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["image_model_id"] == akool_id
    assert kwargs["poll_interval"] == POLL
    assert kwargs["started_at"] + 600 == pytest.approx(kwargs["deadline"], abs=1)
    # Checked once before deferring; a kill of the deferred task has nothing to cancel.
    assert emulator_client.counts()["bg_replace"] == 1
    assert emulator_client.counts()["infobymodelid"] == 1


def test_a_job_done_before_the_first_check_is_not_deferred(
    akool_connection: Any, emulator: Any, emulator_client: Any
) -> None:
    operator = operator_for(emulator, deferrable=True)
    # Slow the submit reply down past the job's whole life, so it is finished at the first check.
    emulator_client.add_fault("slow", path="bg/replace", seconds=0.6)

    result = operator.execute(context_of(StubTaskInstance()))

    assert result["status"] == "success"
    assert emulator_client.counts()["infobymodelid"] == 1


def test_an_interrupted_download_fails_the_task_and_leaves_no_file(
    akool_connection: Any, emulator: Any, emulator_client: Any, tmp_path: Path
) -> None:
    operator = operator_for(emulator, poll_interval=POLL, output_path=f"{tmp_path}/")
    emulator_client.add_fault("drop", path="/media/results/", mode="mid_body")

    with pytest.raises(AkoolConnectionError):
        operator.execute(context_of(StubTaskInstance()))

    assert list(tmp_path.iterdir()) == []
    assert emulator_client.counts()["media"] == 1


def test_every_parameter_a_user_would_template_is_a_template_field() -> None:
    assert set(AkoolBackgroundChangeOperator.template_fields) == {
        "akool_conn_id",
        "webhook_url",
        "output_path",
        "origin_img",
        "canvas_size",
        "modify_origin_img_size",
        "overlay_origin_x",
        "overlay_origin_y",
        "color_code",
        "template_url",
        "modify_template_size",
        "overlay_template_x",
        "overlay_template_y",
        "remove_bg",
    }


def test_the_docstring_says_the_endpoint_is_deprecated() -> None:
    assert "deprecated" in (AkoolBackgroundChangeOperator.__doc__ or "")
