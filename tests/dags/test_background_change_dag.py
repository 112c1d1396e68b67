"""
The background-change example (dags/akool_background_change.py): it parses without the network; the
producer composes every photo twice, keeps the results and checks them; the consumer DAG is scheduled on
the asset the producer updates and reads the files the events name.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from tests.support.dag_runs import run_recorded
from tests.support.example_dags import parse_for_emulator, parse_offline

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "akool_background_change.py"
PRODUCER, CONSUMER = "akool_background_change", "publish_product_photos"
ASSET_URI = "akool://background-change/product-photos"
BRAND_COLOUR = (0xC9, 0xAA, 0xFB)


@pytest.fixture
def examples(akool_connection: Any, emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The example DAGs parsed for the emulator, as ``make demo`` sets them up (no trailing slash here)."""
    return parse_for_emulator(emulator, monkeypatch, f"{tmp_path}/kept")


def test_the_example_parses_without_touching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    bag = parse_offline(monkeypatch)

    assert "akool_background_change.py" not in {Path(path).name for path in bag.import_errors}
    assert {PRODUCER, CONSUMER} <= set(bag.dag_ids)


def test_the_consumer_is_scheduled_on_the_asset_every_composition_updates(examples: Any) -> None:
    change = examples.dags[PRODUCER].get_task("change_background")
    consumer = examples.dags[CONSUMER]

    assert [outlet.uri for outlet in change.partial_kwargs["outlets"]] == [ASSET_URI]
    assert change.partial_kwargs["deferrable"] is True
    assert [asset.uri for asset in consumer.timetable.asset_condition.objects] == [ASSET_URI]


def test_photos_are_composed_kept_and_checked_then_the_consumer_reads_the_new_files(
    airflow_db: Any, examples: Any, emulator_client: Any, tmp_path: Path
) -> None:
    run = run_recorded(examples.dags[PRODUCER], emulator_client)

    assert run.state == "success", run.states
    results = [run.value("change_background", i) for i in range(6)]
    assert [r["status"] for r in results] == ["success"] * 6
    # Three photos, each on the brand colour and on the template; all kept as <id>.png in the folder.
    assert emulator_client.counts()["bg_replace"] == 6
    for result in results:
        kept = Path(result["output_path"])
        assert kept.parent == tmp_path / "kept"
        assert kept.name == f"{result['id']}.png"
    checked = run.value("check_kept_files")
    assert [c["output_path"] for c in checked] == [r["output_path"] for r in results]
    assert [c["size"] for c in checked] == [[800, 800]] * 6
    # The catalogue shot shows the brand colour at its foot, the banner the template there.
    with Image.open(results[0]["output_path"]) as catalogue, Image.open(results[1]["output_path"]) as banner:
        assert catalogue.convert("RGB").getpixel((400, 790)) == BRAND_COLOUR
        assert catalogue.convert("RGB").getpixel((400, 10)) == BRAND_COLOUR
        assert banner.convert("RGB").getpixel((400, 10)) == BRAND_COLOUR
        assert banner.convert("RGB").getpixel((400, 790)) != BRAND_COLOUR

    # Triggered by hand (dag.test), the consumer takes the events of the latest producing run.
    published = run_recorded(examples.dags[CONSUMER], emulator_client)

    assert published.state == "success", published.states
    photos = published.value("publish_new_photos")
    assert sorted(p["output_path"] for p in photos) == sorted(r["output_path"] for r in results)
    assert {p["id"] for p in photos} == {r["id"] for r in results}
    assert [p["size"] for p in photos] == [[800, 800]] * 6


class TriggeringEvents(Mapping[Any, list[Any]]):
    """``triggering_asset_events`` as a task sees it: events by asset (Assets are not hashable on 3.1)."""

    def __init__(self, by_uri: dict[str, list[Any]]) -> None:
        self.by_uri = by_uri

    def __getitem__(self, asset: Any) -> list[Any]:
        return self.by_uri[asset.uri]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.by_uri)

    def __len__(self) -> int:
        return len(self.by_uri)


def test_a_run_the_asset_triggered_reads_the_files_its_events_name(examples: Any, tmp_path: Path) -> None:
    kept = []
    for name, size in (("a.png", (32, 24)), ("b.png", (20, 10))):
        Image.new("RGB", size, BRAND_COLOUR).save(tmp_path / name)
        kept.append(str(tmp_path / name))
    events = [
        SimpleNamespace(extra={"id": "a", "output_path": kept[0]}, source_run_id="r1"),
        SimpleNamespace(extra={"id": "b", "output_path": kept[1]}, source_run_id="r1"),
        # A result that was not kept (no output_path) is skipped.
        SimpleNamespace(extra={"id": "c", "output_path": None}, source_run_id="r1"),
    ]
    publish = examples.dags[CONSUMER].get_task("publish_new_photos").python_callable

    # inlet_events=None: the events that triggered the run are used, not the asset's history.
    photos = publish(triggering_asset_events=TriggeringEvents({ASSET_URI: events}))

    assert photos == [
        {"id": "a", "output_path": kept[0], "size": [32, 24]},
        {"id": "b", "output_path": kept[1], "size": [20, 10]},
    ]


def test_without_pillow_the_size_is_read_from_the_png_header(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = importlib.util.spec_from_file_location("akool_background_change_dag", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    Image.new("RGB", (33, 17), BRAND_COLOUR).save(tmp_path / "kept.png")
    (tmp_path / "kept.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a png")
    # None in sys.modules makes "from PIL import Image" raise ImportError, as without Pillow.
    monkeypatch.setitem(sys.modules, "PIL", None)

    assert example.image_size(str(tmp_path / "kept.png")) == (33, 17)
    with pytest.raises(ValueError, match="is not a PNG image"):
        example.image_size(str(tmp_path / "kept.jpg"))
