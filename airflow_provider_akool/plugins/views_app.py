"""
The FastAPI app of the Akool views (``views.py``), imported only by the API server when it mounts the app.

Mounted at ``/akool``: an "Akool" tab on every task instance (input and result side by side, status, Akool
ids, where the result was kept, how long Akool keeps it) and an "Akool" page under Browse listing recent
Akool jobs across DAGs, newest first, paged. Both are server-rendered HTML read from the XComs the
provider's operators push (the ``akool_id`` key marks an Akool task; its ``return_value`` holds the result)
and from the rendered fields (the input), through the API server's database session.

Routes of a plugin app are not behind Airflow's auth: every route here first resolves the caller from the
JWT (``Authorization: Bearer`` or the UI's ``_token`` cookie) with Airflow's own resolver (401 without a
token or with an expired one, 403 with an invalid one), then asks Airflow's auth manager whether the caller
may read the DAG, its task instances and their XComs (the tab: 403 if not); the list shows only the jobs of
DAGs that pass the same three checks.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from airflow_provider_akool.kinds.base import media_inputs
from airflow_provider_akool.links import safe_link
from airflow_provider_akool.protocol import RESULT_RETENTION_DAYS

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

#: The XCom key every submitting operator pushes right after the submission: it marks an Akool task.
AKOOL_ID_KEY = "akool_id"
#: Rendered fields that hold a job's input, in the order they are looked for.
PAGE_SIZE = 20
_VIDEO_SUFFIXES = (".mp4", ".mov", ".webm")


async def authenticated_user(request: Request) -> BaseUser:
    """
    Return the caller, from ``Authorization: Bearer`` or the ``_token`` cookie, as the core API does.

    :raises HTTPException: 401 without a token or with an expired one, 403 with an invalid one.
    """
    # Imported here: the API server's modules are not needed where the plugin is merely loaded.
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token or None)


def _may_read(user: BaseUser, dag_id: str) -> bool:
    """
    Whether the caller may read what the views show of a DAG's Akool jobs: the DAG, its task instances and
    their XComs (the result, the ids, the callback mark), as Airflow's auth manager decides. The tab and the
    page ask the same.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager, details = get_auth_manager(), DagDetails(id=dag_id)
    return all(
        manager.is_authorized_dag(method="GET", access_entity=entity, details=details, user=user)
        for entity in (None, DagAccessEntity.TASK_INSTANCE, DagAccessEntity.XCOM)
    )


def _readable_dag_ids(user: BaseUser) -> set[str]:
    """The DAGs with Akool jobs whose jobs the caller may read (:func:`_may_read`)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        akool_dag_ids: set[str] = set(
            session.scalars(select(XComModel.dag_id).where(XComModel.key == AKOOL_ID_KEY).distinct())
        )
    return {dag_id for dag_id in akool_dag_ids if _may_read(user, dag_id)}


# FastAPI reads the route signatures at run time: the caller's type is Any there (BaseUser is not imported).
UserDep = Annotated[Any, Depends(authenticated_user)]
PageQuery = Annotated[int, Query(ge=1)]

app = FastAPI(title="Akool results", docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/task/{dag_id}/{run_id}/{task_id}/{map_index}", response_class=HTMLResponse)
def task_view(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str,
    user: UserDep,
) -> HTMLResponse:
    """The tab of one task instance: input and result side by side, with what Akool said."""
    if not _may_read(user, dag_id):
        raise HTTPException(status_code=403, detail="Forbidden")
    # The UI fills {MAP_INDEX} only for a mapped task instance; otherwise the placeholder stays as it is.
    index = int(map_index) if re.fullmatch(r"-?\d+", map_index) else -1
    jobs = _jobs(dag_ids={dag_id}, run_id=run_id, task_id=task_id, map_index=index, limit=1)
    if not jobs:
        body = "<p class='empty'>This task has not submitted an Akool job (or is not an Akool task).</p>"
        return _page("Akool", body)
    return _page("Akool", _job_detail(jobs[0]))


@app.get("/jobs", response_class=HTMLResponse)
def jobs_view(user: UserDep, page: PageQuery = 1) -> HTMLResponse:
    """Recent Akool jobs across the DAGs the caller may read, newest first, :data:`PAGE_SIZE` a page."""
    dag_ids = _readable_dag_ids(user)
    total = _count(dag_ids)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(page, pages)
    jobs = _jobs(dag_ids=dag_ids, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    rows = "".join(_job_row(job) for job in jobs) or (
        "<tr><td colspan='7' class='empty'>No Akool job yet in the DAGs you can read.</td></tr>"
    )
    nav = []
    if page > 1:
        nav.append(f"<a class='prev' href='?{urlencode({'page': page - 1})}'>&larr; newer</a>")
    nav.append(f"<span>page {page} of {pages} ({total} jobs)</span>")
    if page < pages:
        nav.append(f"<a class='next' href='?{urlencode({'page': page + 1})}'>older &rarr;</a>")
    body = (
        "<h1>Akool jobs</h1><table class='jobs'><thead><tr><th>result</th><th>input</th><th>status</th>"
        "<th>DAG / run / task</th><th>Akool id</th><th>submitted</th><th>Akool keeps it</th></tr></thead>"
        f"<tbody>{rows}</tbody></table><nav>{' '.join(nav)}</nav>"
    )
    return _page("Akool jobs", body)


# --- Reading the jobs -------------------------------------------------------------------------------


def _marker_query(dag_ids: set[str], run_id: str | None, task_id: str | None, map_index: int | None) -> Any:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query: Any = (
        select(
            XComModel.dag_id,
            XComModel.run_id,
            XComModel.task_id,
            XComModel.map_index,
            XComModel.timestamp,
            TaskInstance.start_date,
        )
        .outerjoin(
            TaskInstance,
            (TaskInstance.dag_id == XComModel.dag_id)
            & (TaskInstance.run_id == XComModel.run_id)
            & (TaskInstance.task_id == XComModel.task_id)
            & (TaskInstance.map_index == XComModel.map_index),
        )
        .where(XComModel.key == AKOOL_ID_KEY, XComModel.dag_id.in_(sorted(dag_ids)))
    )
    if run_id is not None:
        query = query.where(XComModel.run_id == run_id)
    if task_id is not None:
        query = query.where(XComModel.task_id == task_id)
    if map_index is not None:
        query = query.where(XComModel.map_index == map_index)
    return query


def _count(dag_ids: set[str]) -> int:
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    if not dag_ids:
        return 0
    with create_session() as session:
        subquery = _marker_query(dag_ids, None, None, None).subquery()
        return int(session.scalar(select(func.count()).select_from(subquery)) or 0)


def _jobs(
    *,
    dag_ids: set[str],
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    limit: int,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The Akool jobs of these task instances, newest submission first, with their XComs and inputs."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, tuple_

    if not dag_ids:
        return []
    with create_session() as session:
        query = _marker_query(dag_ids, run_id, task_id, map_index)
        markers = session.execute(
            # Newest submission first: the try's start (the submission follows it), then the id's push.
            query.order_by(
                TaskInstance.start_date.desc().nulls_last(), XComModel.timestamp.desc(), XComModel.task_id
            )
            .limit(limit)
            .offset(offset)
        ).all()
        if not markers:
            return []
        keys = [(m.dag_id, m.run_id, m.task_id, m.map_index) for m in markers]
        xcoms: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in session.execute(
            select(
                XComModel.dag_id,
                XComModel.run_id,
                XComModel.task_id,
                XComModel.map_index,
                XComModel.key,
                XComModel.value,
            ).where(
                tuple_(XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.map_index).in_(keys)
            )
        ):
            xcoms.setdefault(tuple(row[:4]), {})[row.key] = _json(row.value)
        states = {
            (ti.dag_id, ti.run_id, ti.task_id, ti.map_index): ti
            for ti in session.execute(
                select(
                    TaskInstance.dag_id,
                    TaskInstance.run_id,
                    TaskInstance.task_id,
                    TaskInstance.map_index,
                    TaskInstance.state,
                    TaskInstance.start_date,
                    TaskInstance.end_date,
                ).where(
                    tuple_(
                        TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index
                    ).in_(keys)
                )
            )
        }
        rendered = {
            (r.dag_id, r.run_id, r.task_id, r.map_index): _json(r.rendered_fields)
            for r in session.execute(
                select(
                    RenderedTaskInstanceFields.dag_id,
                    RenderedTaskInstanceFields.run_id,
                    RenderedTaskInstanceFields.task_id,
                    RenderedTaskInstanceFields.map_index,
                    RenderedTaskInstanceFields.rendered_fields,
                ).where(
                    tuple_(
                        RenderedTaskInstanceFields.dag_id,
                        RenderedTaskInstanceFields.run_id,
                        RenderedTaskInstanceFields.task_id,
                        RenderedTaskInstanceFields.map_index,
                    ).in_(keys)
                )
            )
        }
    return [
        _describe(marker, xcoms.get(key, {}), states.get(key), rendered.get(key))
        for marker, key in zip(markers, keys, strict=True)
    ]


def _json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _describe(marker: Any, xcoms: dict[str, Any], ti: Any, rendered: Any) -> dict[str, Any]:
    """One job as the views show it."""
    result = xcoms.get("return_value")
    result = result if isinstance(result, dict) else {}
    fields = rendered if isinstance(rendered, dict) else {}
    # The first media input of any registered kind that the task rendered (a list of faces is not shown).
    shown = (media_input for media_input in media_inputs().values() if media_input.key is None)
    input_field, input_value = next(
        (
            (media_input, fields[media_input.name])
            for media_input in shown
            if fields.get(media_input.name) not in (None, "")
        ),
        (None, None),
    )
    if isinstance(input_value, dict):  # an ObjectStoragePath, as Airflow stores it
        input_value = input_value.get("path") or json.dumps(input_value)
    submitted = ti.start_date if ti is not None and ti.start_date is not None else marker.timestamp
    return {
        "dag_id": marker.dag_id,
        "run_id": marker.run_id,
        "task_id": marker.task_id,
        "map_index": marker.map_index,
        "state": str(ti.state) if ti is not None and ti.state is not None else "unknown",
        "status": result.get("status") or "submitted",
        "id": result.get("id") or xcoms.get(AKOOL_ID_KEY),
        "job_id": result.get("job_id") or xcoms.get("akool_job_id"),
        "url": safe_link(result.get("url") or xcoms.get("akool_result_url") or ""),
        "output_path": result.get("output_path"),
        "input_field": input_field.name if input_field is not None else None,
        "input": None if input_value is None else str(input_value),
        "video": input_field is not None and input_field.media == "video",
        "submitted": submitted,
        # Akool keeps a result 7 days after the job finished; the try's start is a safe lower bound.
        "kept_until": submitted + timedelta(days=RESULT_RETENTION_DAYS) if submitted else None,
    }


# --- HTML -------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _media(url: str | None, video: bool, css: str) -> str:
    link = safe_link(url or "")
    if not link:
        return f"<div class='{css} none'>{_e(url) if url else 'none'}</div>"
    if video or link.split("?", 1)[0].lower().endswith(_VIDEO_SUFFIXES):
        return f"<video class='{css}' src='{_e(link)}' controls preload='metadata'></video>"
    image = f"<img class='{css}' src='{_e(link)}' alt=''>"
    return f"<a href='{_e(link)}' target='_blank' rel='noopener'>{image}</a>"


def _left(kept_until: datetime | None, now: datetime | None = None) -> str:
    if kept_until is None:
        return "unknown"
    now = now or datetime.now(timezone.utc)
    if kept_until.tzinfo is None:
        kept_until = kept_until.replace(tzinfo=timezone.utc)
    left = kept_until - now
    if left.total_seconds() <= 0:
        return "expired"
    days, hours = left.days, left.seconds // 3600
    return f"{days} d {hours} h left" if days else f"{hours} h {left.seconds % 3600 // 60} min left"


def _ui_links(job: dict[str, Any]) -> str:
    dag, run, task = (quote(job[k], safe="") for k in ("dag_id", "run_id", "task_id"))
    task_href = f"/dags/{dag}/runs/{run}/tasks/{task}" + (
        f"/mapped/{job['map_index']}" if job["map_index"] >= 0 else ""
    )
    index = f" [{job['map_index']}]" if job["map_index"] >= 0 else ""
    return (
        f"<a class='ui' href='/dags/{dag}'>{_e(job['dag_id'])}</a> / "
        f"<a class='ui' href='/dags/{dag}/runs/{run}'>{_e(job['run_id'])}</a> / "
        f"<a class='ui' href='{task_href}'>{_e(job['task_id'])}{index}</a>"
    )


def _job_row(job: dict[str, Any]) -> str:
    submitted = job["submitted"].strftime("%Y-%m-%d %H:%M UTC") if job["submitted"] else ""
    return (
        f"<tr class='job'><td>{_media(job['url'], job['video'], 'thumb result')}</td>"
        f"<td>{_media(job['input'], job['video'], 'thumb input')}</td>"
        f"<td><span class='status {_e(job['status'])}'>{_e(job['status'])}</span></td>"
        f"<td>{_ui_links(job)}</td><td><code>{_e(job['id'])}</code></td><td>{_e(submitted)}</td>"
        f"<td>{_e(_left(job['kept_until']))}</td></tr>"
    )


def _job_detail(job: dict[str, Any]) -> str:
    kept = job["kept_until"].strftime("%Y-%m-%d %H:%M UTC") if job["kept_until"] else "unknown"
    facts = [
        (
            "status",
            f"<span class='status {_e(job['status'])}'>{_e(job['status'])}</span> (task {_e(job['state'])})",
        ),
        ("Akool _id", f"<code>{_e(job['id'])}</code>"),
        ("job_id", f"<code>{_e(job['job_id'] or '-')}</code>"),
        (
            "result URL",
            f"<a href='{_e(job['url'])}' target='_blank' rel='noopener'>{_e(job['url'])}</a>"
            if job["url"]
            else "not yet",
        ),
        (
            "kept at",
            f"<code>{_e(job['output_path'])}</code>" if job["output_path"] else "not kept (no output_path)",
        ),
        (
            "Akool keeps it",
            f"{RESULT_RETENTION_DAYS} days: until about {_e(kept)} ({_e(_left(job['kept_until']))})",
        ),
        ("input", f"{_e(job['input_field'] or '-')}: <code>{_e(job['input'] or '-')}</code>"),
    ]
    rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    return (
        "<div class='pair'>"
        f"<figure><figcaption>input</figcaption>{_media(job['input'], job['video'], 'full input')}</figure>"
        f"<figure><figcaption>result</figcaption>{_media(job['url'], job['video'], 'full result')}</figure>"
        f"</div><table class='facts'>{rows}</table>"
    )


_STYLE = """
body{font-family:system-ui,sans-serif;margin:12px;color:#1a202c}
h1{font-size:20px}
table{border-collapse:collapse}
td,th{padding:6px 10px;border-bottom:1px solid #e2e8f0;text-align:left;vertical-align:middle}
.thumb{max-width:96px;max-height:72px;border-radius:4px}
.full{max-width:100%;max-height:420px;border-radius:6px}
.pair{display:flex;gap:16px}
.pair figure{flex:1;margin:0}
figcaption{font-weight:600;margin-bottom:4px}
.status{padding:2px 8px;border-radius:10px;background:#edf2f7}
.status.success{background:#c6f6d5}.status.failed{background:#fed7d7}
.none{color:#718096;font-size:12px;word-break:break-all}
nav{margin-top:12px;display:flex;gap:16px}
.empty{color:#718096}
"""


# The UI shows these pages in an iframe sandboxed without top navigation: a link to a DAG, run or task
# routes the UI itself (same origin) to it instead of opening the whole UI inside the frame.
_SCRIPT = """
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.ui");
  if (!link || window.top === window) return;
  try {
    window.top.history.pushState({}, "", link.getAttribute("href"));
    window.top.dispatchEvent(new PopStateEvent("popstate"));
    event.preventDefault();
  } catch (error) {}
});
"""


def _page(title: str, body: str) -> HTMLResponse:
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}<script>{_SCRIPT}</script></body></html>"
    )
    # No caching: what a page shows depends on who asks.
    return HTMLResponse(document, headers={"Cache-Control": "no-store"})
