"""
The names of before the one vocabulary (issue 21) still work, each with a ``DeprecationWarning`` that
names its replacement, and each is the new thing, not a copy of it.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

from airflow_provider_akool.emulator import EmulatorServer
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.models import BackgroundChangeResult, JobStatus
from airflow_provider_akool.sensors.background_change import AkoolBackgroundChangeSensor
from airflow_provider_akool.wait import JobSnapshot
from tests.conftest import ConnectionFactory

#: (module, old name, new name): the module-level renames.
MODULE_RENAMES = [
    ("airflow_provider_akool.models", "ImageResult", "BackgroundChangeResult"),
    ("airflow_provider_akool.protocol", "build_image_result", "build_background_change_result"),
    ("airflow_provider_akool.kinds.background_change", "fetch_image_result", "fetch_background_change"),
    ("airflow_provider_akool.kinds.background_change", "afetch_image_result", "afetch_background_change"),
    ("airflow_provider_akool.triggers.poller", "Fetch", "AsyncFetch"),
]


@pytest.mark.parametrize(("module", "old", "new"), MODULE_RENAMES, ids=lambda value: str(value))
def test_an_old_module_name_is_the_new_one_with_a_warning(module: str, old: str, new: str) -> None:
    loaded = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is deprecated: use {module}\.{new}"):
        value = getattr(loaded, old)
    assert value is getattr(loaded, new)


def test_an_unknown_module_name_is_still_an_attribute_error() -> None:
    loaded = importlib.import_module("airflow_provider_akool.models")
    with pytest.raises(AttributeError, match="no attribute 'ImageResults'"):
        loaded.ImageResults  # noqa: B018


def test_snapshot_of_image_is_of_background_change_with_a_warning() -> None:
    result = BackgroundChangeResult(id="a" * 24, status=JobStatus.FAILED, error_reasons=["no"])
    with pytest.warns(DeprecationWarning, match="use JobSnapshot.of_background_change"):
        old = JobSnapshot.of_image(result)
    assert (
        old
        == JobSnapshot.of_background_change(result)
        == JobSnapshot(id="a" * 24, status=JobStatus.FAILED, reasons=("no",))
    )


def test_the_image_result_sensor_is_the_background_change_sensor_with_a_warning() -> None:
    from airflow_provider_akool.sensors.image_result import AkoolImageResultSensor

    with pytest.warns(DeprecationWarning, match="use AkoolBackgroundChangeSensor"):
        sensor = AkoolImageResultSensor(task_id="s", image_model_id="a" * 24)
    assert isinstance(sensor, AkoolBackgroundChangeSensor)
    assert sensor.ids_to_wait_for() == ["a" * 24]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_hooks_get_image_result_is_get_background_change_result_with_a_warning(
    mode: str, akool_connection: ConnectionFactory, emulator: EmulatorServer
) -> None:
    hook = AkoolHook()
    job = hook.submit_background_change(
        origin_img=f"{emulator.url}/media/samples/product.png",
        canvas_size=(64, 48),
        modify_origin_img_size="32x24",
        overlay_origin_x=8,
        overlay_origin_y=8,
        color_code="#c9aafb",
    )

    async def both() -> tuple[Any, Any]:
        async with AkoolHook() as ahook:
            with pytest.warns(DeprecationWarning, match="use AkoolHook.aget_background_change_result"):
                old = await ahook.aget_image_result(job.id)
            return old, await ahook.aget_background_change_result(job.id)

    if mode == "sync":
        with pytest.warns(DeprecationWarning, match="use AkoolHook.get_background_change_result"):
            old = hook.get_image_result(job.id)
        new = hook.get_background_change_result(job.id)
    else:
        old, new = asyncio.run(both())
    assert old == new
    assert old.id == job.id


def test_a_triggers_job_ids_is_job_id_of_with_a_warning() -> None:
    from airflow_provider_akool.triggers.reage import AkoolReageTrigger

    mapping = {"a" * 24: "20240102082900592-5653"}
    with pytest.warns(DeprecationWarning, match=r"use AkoolReageTrigger\(job_id_of=...\)"):
        old = AkoolReageTrigger(result_ids=["a" * 24], job_ids=mapping)
    new = AkoolReageTrigger(result_ids=["a" * 24], job_id_of=mapping, started_at=old.started_at)
    assert old.job_id_of == new.job_id_of == mapping
    assert old.serialize() == new.serialize()
    with pytest.warns(DeprecationWarning, match=r"use AkoolReageTrigger\.job_id_of"):
        assert old.job_ids == mapping
    with pytest.raises(TypeError, match="job_id_of only"):
        AkoolReageTrigger(result_ids=["a" * 24], job_ids=mapping, job_id_of=mapping)


@pytest.mark.parametrize("name", ["job_id_of", "job_ids"])
def test_the_background_change_trigger_takes_no_job_id_mapping_by_either_name(name: str) -> None:
    from airflow_provider_akool.triggers.image_result import AkoolImageResultTrigger

    with pytest.raises(TypeError, match="takes no job_id_of"):
        AkoolImageResultTrigger(image_model_id="a" * 24, **{name: {"a" * 24: None}})
