"""
The "Akool" task-instance tab and the "Akool" page (plugins/views.py), served by the plugin's FastAPI app
over jobs that ran through ``dag.test()`` against the emulator, with Airflow's own auth manager and JWTs.

The routes of a plugin app are not behind Airflow's auth: these tests prove the app checks every caller
(no token: 401, an invalid or expired one: 401/403, a DAG the auth manager hides: 403 and left out).
The stack and the browser (tests/e2e/test_browser.py) show the same views inside the Airflow UI.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pendulum
import pytest
import requests
from airflow.sdk import dag
from fastapi.testclient import TestClient

from airflow_provider_akool.operators.reage import AkoolImageReageOperator, AkoolVideoReageOperator
from airflow_provider_akool.plugins import views, views_app
from tests.support import views_auth
from tests.support.dag_runs import RecordedRun, run_recorded
from tests.support.samples import sample
from tests.support.views_auth import HIDDEN_DAG, OPEN_DAG, token

#: The auth manager (a fixture), asked for by name.
auth = views_auth.auth

START = pendulum.datetime(2026, 1, 1, tz="UTC")
FACE = "2804,2182:3607,1897:3341,2566:3519,2920"


@pytest.fixture(scope="module")
def runs(module_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RecordedRun]:
    emulator = module_emulator
    out = tmp_path_factory.mktemp("kept")
    portrait, clip = sample(emulator, "portrait.jpg"), sample(emulator, "clip.mp4")

    @dag(dag_id=OPEN_DAG, schedule=None, start_date=START)
    def open_dag() -> None:
        image = AkoolImageReageOperator(
            task_id="image", modify_image=portrait, face_reage=12, output_path=f"{out}/", poll_interval=0.2
        )
        video = AkoolVideoReageOperator(
            task_id="video",
            modify_video=clip,
            target_image=[{"path": portrait, "opts": FACE}],
            face_reage=-8,
            poll_interval=0.2,
        )
        image >> video  # the video is the newest job

    @dag(dag_id=HIDDEN_DAG, schedule=None, start_date=START)
    def hidden_dag() -> None:
        AkoolImageReageOperator(task_id="image", modify_image=portrait, face_reage=3, poll_interval=0.2)

    hidden = run_recorded(hidden_dag(), emulator.client)
    opened = run_recorded(open_dag(), emulator.client)
    return {OPEN_DAG: opened, HIDDEN_DAG: hidden}


@pytest.fixture
def client(runs: dict[str, RecordedRun], auth: Any) -> TestClient:
    return TestClient(views_app.app)


def tab(run: RecordedRun, task_id: str) -> str:
    ti = run.tis[(task_id, -1)]
    return f"/task/{ti.dag_id}/{ti.run_id}/{ti.task_id}/-1"


# --- Who may see what --------------------------------------------------------------------------------


def test_without_a_token_both_views_answer_401(client: TestClient, runs: dict[str, RecordedRun]) -> None:
    for path in ("/jobs", tab(runs[OPEN_DAG], "image")):
        reply = client.get(path)
        assert reply.status_code == 401, (path, reply.text)
        assert "Akool" not in reply.text


def test_an_invalid_token_answers_403_and_an_expired_one_401(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any
) -> None:
    path = tab(runs[OPEN_DAG], "image")
    forged = token(auth, "viewer")[:-4] + "AAAA"
    assert client.get(path, headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    assert client.get("/jobs", cookies={"_token": "not-a-jwt"}).status_code == 403
    expired = token(auth, "viewer", seconds=-60)
    assert client.get(path, headers={"Authorization": f"Bearer {expired}"}).status_code == 401


def test_a_dag_the_auth_manager_hides_is_403_on_its_tab_and_left_out_of_the_list(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any
) -> None:
    viewer = {"Authorization": f"Bearer {token(auth, 'viewer')}"}
    hidden_tab = tab(runs[HIDDEN_DAG], "image")
    reply = client.get(hidden_tab, headers=viewer)
    assert reply.status_code == 403
    hidden_id = runs[HIDDEN_DAG].value("image")["id"]
    assert hidden_id not in reply.text
    listed = client.get("/jobs", headers=viewer)
    assert listed.status_code == 200
    assert hidden_id not in listed.text
    assert HIDDEN_DAG not in listed.text
    # Another user, whom the auth manager lets read it, sees it; by cookie, as the UI's iframe sends it.
    admin = client.get("/jobs", cookies={"_token": token(auth, "admin", role="admin")})
    assert hidden_id in admin.text
    assert client.get(hidden_tab, cookies={"_token": token(auth, "admin", role="admin")}).status_code == 200


@pytest.mark.parametrize("name", ["no_xcom", "no_ti"])
def test_a_caller_who_may_not_read_the_task_instances_or_their_xcoms_sees_no_job_on_the_tab_or_the_page(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any, name: str
) -> None:
    # What the views show comes from both: the task instance's state and its XComs (the result, the ids).
    cookies = {"_token": token(auth, name)}
    job_id = runs[OPEN_DAG].value("image")["id"]
    reply = client.get(tab(runs[OPEN_DAG], "image"), cookies=cookies)
    assert reply.status_code == 403
    assert job_id not in reply.text
    listed = client.get("/jobs", cookies=cookies)
    assert listed.status_code == 200
    assert job_id not in listed.text
    assert OPEN_DAG not in listed.text
    assert "(0 jobs)" in listed.text


# --- What the views show -----------------------------------------------------------------------------


def test_the_tab_shows_input_and_result_side_by_side_with_ids_storage_and_retention(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any, module_emulator: Any
) -> None:
    run = runs[OPEN_DAG]
    result = run.value("image")
    reply = client.get(tab(run, "image"), cookies={"_token": token(auth, "viewer")})
    assert reply.status_code == 200
    page = reply.text
    images = re.findall(r"<img class='full (input|result)' src='([^']+)'", page)
    assert images == [("input", sample(module_emulator, "portrait.jpg")), ("result", result["url"])]
    assert f"<code>{result['id']}</code>" in page
    assert f"<code>{result['job_id']}</code>" in page
    assert f"<code>{result['output_path']}</code>" in page
    assert "<span class='status success'>success</span>" in page
    assert re.search(r"7 days: until about \d{4}-\d\d-\d\d \d\d:\d\d UTC \(6 d (22|23) h left\)", page), page
    # Both images load.
    for _, url in images:
        loaded = requests.get(url, timeout=10)
        assert loaded.status_code == 200
        assert loaded.headers["content-type"].startswith("image/")


def test_an_unmapped_task_tab_works_with_the_placeholder_the_ui_leaves(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any
) -> None:
    # The UI replaces {MAP_INDEX} only for mapped task instances.
    path = tab(runs[OPEN_DAG], "image").replace("/-1", "/{MAP_INDEX}")
    reply = client.get(path, cookies={"_token": token(auth, "viewer")})
    assert reply.status_code == 200
    assert runs[OPEN_DAG].value("image")["id"] in reply.text


def test_a_video_job_gets_video_players(client: TestClient, runs: dict[str, RecordedRun], auth: Any) -> None:
    run = runs[OPEN_DAG]
    page = client.get(tab(run, "video"), cookies={"_token": token(auth, "viewer")}).text
    players = re.findall(r"<video class='full (input|result)' src='([^']+)' controls", page)
    assert [kind for kind, _ in players] == ["input", "result"]
    assert players[1][1] == run.value("video")["url"]
    assert "not kept (no output_path)" in page


def test_a_task_without_an_akool_job_says_so(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any
) -> None:
    ti = runs[OPEN_DAG].tis[("image", -1)]
    reply = client.get(
        f"/task/{ti.dag_id}/{ti.run_id}/no_such_task/-1", cookies={"_token": token(auth, "viewer")}
    )
    assert reply.status_code == 200
    assert "has not submitted an Akool job" in reply.text


def test_the_page_lists_jobs_newest_first_paged_with_links_thumbnails_and_time_left(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = runs[OPEN_DAG]
    scoped = {"_token": token(auth, "scoped")}
    page = client.get("/jobs", cookies=scoped).text
    ids = re.findall(r"<tr class='job'>.*?<code>([0-9a-f]{24})</code>", page)
    # The video ran after the image: newest first; nothing of the DAGs the caller may not read.
    assert ids == [run.value("video")["id"], run.value("image")["id"]]
    ti = run.tis[("video", -1)]
    quoted_run = quote(ti.run_id, safe="")
    assert f"<a class='ui' href='/dags/{OPEN_DAG}/runs/{quoted_run}'>" in page
    assert f"<a class='ui' href='/dags/{OPEN_DAG}/runs/{quoted_run}/tasks/video'>video</a>" in page
    assert f"<img class='thumb result' src='{run.value('image')['url']}'" in page
    assert re.search(r"<td>6 d (22|23) h left</td>", page)

    monkeypatch.setattr(views_app, "PAGE_SIZE", 1)
    first, second = (client.get("/jobs", params={"page": n}, cookies=scoped).text for n in (1, 2))
    assert re.findall(r"<code>([0-9a-f]{24})</code>", first) == [run.value("video")["id"]]
    assert re.findall(r"<code>([0-9a-f]{24})</code>", second) == [run.value("image")["id"]]
    assert "older &rarr;" in first
    assert "&larr; newer" in second
    assert "page 2 of 2 (2 jobs)" in second


def test_what_a_job_holds_is_escaped_links_are_http_only_and_pages_are_not_cached(
    client: TestClient, runs: dict[str, RecordedRun], auth: Any
) -> None:
    from datetime import datetime, timezone

    job = {
        "dag_id": "<script>alert(1)</script>",
        "run_id": "r' onload='alert(2)",
        "task_id": "t",
        "map_index": -1,
        "state": "success",
        "status": "success<b>",
        "id": "<img src=x>",
        "job_id": None,
        "url": views_app.safe_link("javascript:alert(3)"),
        "output_path": None,
        "input_field": "modify_image",
        "input": "javascript:alert(4)",
        "video": False,
        "submitted": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "kept_until": None,
    }
    for html in (views_app._job_detail(job), views_app._job_row(job)):
        assert "<script>" not in html
        assert "<img src=x>" not in html
        assert "<b>" not in html
        assert "' onload='" not in html
        assert "href='javascript" not in html
        assert "src='javascript" not in html
    reply = client.get("/jobs", cookies={"_token": token(auth, "viewer")})
    assert reply.headers["cache-control"] == "no-store"


def test_the_plugin_declares_the_tab_and_the_page_for_the_ui() -> None:
    plugin = views.AkoolViewsPlugin
    assert plugin.fastapi_apps == [{"app": views_app.app, "url_prefix": "/akool", "name": "Akool results"}]
    assert plugin().fastapi_apps == plugin.fastapi_apps
    tab_view, page_view = plugin.external_views
    assert tab_view["destination"] == "task_instance"
    assert tab_view["href"] == "/akool/task/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}"
    assert page_view["destination"] == "nav"
    assert page_view["href"] == "/akool/jobs"


def test_airflow_loads_the_plugin_through_its_entry_point() -> None:
    # Entry-point plugins load in every component; provider-info ones only without lazy provider discovery.
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.name == "akool_views"]
    assert entry.load() is views.AkoolViewsPlugin
