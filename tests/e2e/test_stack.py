"""
The example DAGs on a real Airflow stack: scheduler, triggerer, API server and DAG processor on loopback,
against the local Akool emulator; everything driven through the REST API, as a user would.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from tests.e2e.conftest import (
    IMAGE_REAGE_DAG,
    REQUIRED_EXAMPLE_DAGS,
    SUBMIT_ENDPOINTS,
    SUBMITTING_OPERATORS,
    ExampleRuns,
    JobGate,
    Run,
    RunWatcher,
    TaskFacts,
    task_facts,
    ti_key,
    ti_path,
    trigger_log_files,
    waited_for_a_job,
    xcom_value,
)
from tests.stack.airflow_stack import CONNECTION_ID, LOOPBACK, AirflowStack
from tests.support.airflow_version import AIRFLOW_VERSION

pytestmark = pytest.mark.e2e

REAGE_OPERATORS = frozenset({"AkoolImageReageOperator", "AkoolVideoReageOperator"})
DEFERRED_MARK = "Pausing task as DEFERRED"
FIRED_MARK = "Trigger fired event"
# A JWT (header.payload.signature, base64url) or a bearer credential that the masker did not replace.
JWT_PATTERN = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")
BEARER_PATTERN = re.compile(r"Bearer\s+(?!\*\*\*)[\w.~+/=-]{12,}")


def _triggerer_job_ids(stack: AirflowStack) -> set[int]:
    jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob", "limit": 100})["jobs"]
    return {int(job["id"]) for job in jobs}


def _problems_with_deferral(stack: AirflowStack, facts: TaskFacts, triggerers: set[int]) -> list[str]:
    """Why a task that waited for a job did not wait deferred in the triggerer (empty: it did)."""
    where = f"{facts.ti['dag_id']}.{ti_key(facts.ti)}"
    problems = []
    if "deferred" not in facts.states_seen:
        problems.append(f"{where} never seen deferred (states: {facts.states_seen})")
    if DEFERRED_MARK not in facts.log:
        problems.append(f"{where}: its log does not say it deferred")
    if FIRED_MARK not in facts.log:
        problems.append(f"{where}: its log shows no trigger event")
    files = trigger_log_files(stack, facts.ti)
    fired_by = {job_id for job_id, text in files.items() if FIRED_MARK in text}
    if not fired_by or not fired_by <= triggerers:
        problems.append(f"{where}: fired by {fired_by or 'no'} triggerer job (triggerers: {triggerers})")
    if facts.ti["try_number"] != 1:
        problems.append(f"{where}: try {facts.ti['try_number']}, not resumed within its first try")
    return problems


# --- The stack itself --------------------------------------------------------------------------------


def test_stack_listens_on_loopback_only(stack: AirflowStack) -> None:
    listening = [
        (proc.name(), conn.laddr)
        for proc in stack.process_tree()
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert any(addr.port == stack.api_port for _, addr in listening), listening
    assert all(addr.ip == LOOPBACK for _, addr in listening), listening


def test_akool_connection_is_stored_and_reaches_the_emulator(stack: AirflowStack) -> None:
    # Created through the REST API (not an AIRFLOW_CONN_ variable), so the UI lists it.
    conn = stack.api("GET", f"/connections/{CONNECTION_ID}")
    # Host, scheme and port in their own fields, so the UI's Test button can send the port back.
    emulator = urlsplit(stack.emulator_url)
    assert (conn["conn_type"], conn["host"], conn["schema"], conn["port"]) == (
        "akool",
        emulator.hostname,
        emulator.scheme,
        emulator.port,
    )
    assert conn["password"] != stack.api_key
    listed = stack.api("GET", "/connections", params={"limit": 100})["connections"]
    assert CONNECTION_ID in {item["connection_id"] for item in listed}
    # The hook's test_connection() behind the form's "Test" button, with the fields the form sends.
    tested = stack.api(
        "POST",
        "/connections/test",
        json_body={
            "connection_id": CONNECTION_ID,
            "conn_type": "akool",
            "host": stack.emulator_url,
            "password": stack.api_key,
        },
    )
    assert tested["status"] is True, tested
    # What the connection list's Test button sends (Airflow's TestConnectionButton: the stored fields, the
    # masked key, Number(port)): Airflow must accept it and run the hook with the stored key.
    as_the_ui_sends = {
        "connection_id": CONNECTION_ID,
        "conn_type": conn["conn_type"],
        "description": conn["description"] or "",
        "extra": conn["extra"] or "{}",
        "host": conn["host"] or "",
        "login": conn["login"] or "",
        "password": conn["password"] or "",
        "port": int(conn["port"] or 0),
        "schema": conn["schema"] or "",
    }
    tested = stack.api("POST", "/connections/test", json_body=as_the_ui_sends)
    # The balance depends on what the suite ran before: every job is charged.
    assert tested["status"] is True, tested
    assert re.fullmatch(
        rf"Connected to Akool at {re.escape(stack.emulator_url)} \(api_key\); credit balance: \d+",
        tested["message"],
    ), tested
    health = requests.get(f"{stack.url}/api/v2/monitor/health", timeout=10).json()
    assert {health[key]["status"] for key in ("scheduler", "triggerer", "dag_processor")} == {"healthy"}


# --- Every example DAG, run once ---------------------------------------------------------------------


def test_every_example_dag_is_run(example_runs: ExampleRuns, example_dag_ids: list[str]) -> None:
    assert set(REQUIRED_EXAMPLE_DAGS) <= set(example_runs.runs)
    assert sorted(example_runs.runs) == example_dag_ids


def test_every_example_dag_run_succeeds(example_runs: ExampleRuns) -> None:
    failed = {
        dag_id: {key: facts.ti["state"] for key, facts in example_runs.facts[dag_id].items()}
        for dag_id, run in example_runs.runs.items()
        if run.state != "success"
        or any(facts.ti["state"] != "success" for facts in example_runs.facts[dag_id].values())
    }
    assert not failed, f"{failed}; {example_runs.watcher.describe()}"


def test_tasks_that_wait_for_akool_defer_and_the_triggerer_finishes_them(
    stack: AirflowStack, example_runs: ExampleRuns
) -> None:
    triggerers = _triggerer_job_ids(stack)
    problems: list[str] = []
    for dag_id, facts_by_key in example_runs.facts.items():
        waiting = [facts for facts in facts_by_key.values() if waited_for_a_job(facts)]
        if not waiting:
            problems.append(f"{dag_id}: no task waited for an Akool job")
        for facts in waiting:
            problems.extend(_problems_with_deferral(stack, facts, triggerers))
    assert not problems, "\n".join(problems)


def test_each_submitting_task_submits_exactly_once(stack: AirflowStack, example_runs: ExampleRuns) -> None:
    submitters = [
        facts
        for facts_by_key in example_runs.facts.values()
        for facts in facts_by_key.values()
        if facts.operator in SUBMITTING_OPERATORS
    ]
    ids = [facts.xcom["akool_id"] for facts in submitters]
    assert all(ids), {ti_key(facts.ti): facts.xcom for facts in submitters}
    assert len(set(ids)) == len(ids)
    assert sum(example_runs.submissions.values()) == len(submitters), example_runs.submissions
    assert set(ids) <= set(stack.ledger()["jobs"])


def test_finished_akool_tasks_show_the_akool_result_link(example_runs: ExampleRuns) -> None:
    finished = [
        facts
        for facts_by_key in example_runs.facts.values()
        for facts in facts_by_key.values()
        if facts.operator in SUBMITTING_OPERATORS and waited_for_a_job(facts)
    ]
    assert {facts.operator for facts in finished} >= {"AkoolImageReageOperator"}
    for facts in finished:
        url = facts.return_value["url"]
        assert facts.links.get("Akool result") == url == facts.xcom["akool_result_url"], facts.links
        assert url.startswith(f"{example_runs.watcher.stack.emulator_url}/media/results/")
        assert requests.get(url, timeout=30).status_code == 200


# --- The triggerer dies while reage tasks are deferred -------------------------------------------------


def _deferred(run: Run) -> list[dict[str, Any]]:
    return [ti for ti in run.task_instances if ti["state"] == "deferred"]


def _triggerer_of(ti: dict[str, Any]) -> int | None:
    job = ti.get("triggerer_job") or {}
    return int(job["id"]) if job.get("id") is not None else None


def test_runs_survive_a_killed_triggerer_with_one_submission_per_task(stack: AirflowStack) -> None:
    before = stack.ledger()
    with JobGate(stack) as gate:
        watcher = RunWatcher(stack, gate)
        runs = [watcher.start(dag_id) for dag_id in REQUIRED_EXAMPLE_DAGS]
        watcher.wait_until(
            lambda: (
                watcher.settled()
                and all(_deferred(run) and all(_triggerer_of(ti) for ti in _deferred(run)) for run in runs)
            ),
            "every reage run waits deferred in the triggerer",
        )
        deferred = {(run.dag_id, ti_key(ti)): ti for run in runs for ti in _deferred(run)}
        old_triggerers = {_triggerer_of(ti) for ti in deferred.values()}
        old_pid = stack.pid("triggerer")

        new_pid = stack.restart_triggerer()

        assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE
        new_triggerers = _triggerer_job_ids(stack) - old_triggerers
        # The jobs are held: the old triggerer could not have finished them, the new one takes them over
        # once the old one's heartbeat is older than the health-check threshold.
        watcher.wait_until(
            lambda: (
                all(_triggerer_of(ti) in new_triggerers for run in runs for ti in _deferred(run))
                and all(_deferred(run) for run in runs)
            ),
            f"the new triggerer (pid {new_pid}) took over every trigger",
            timeout=90,
        )
        watcher.wait_until(watcher.deferrals_reported, "the scheduler saw every deferral")
        gate.release()
        watcher.finish()

    after = stack.ledger()
    problems = []
    submitted = []
    for run in runs:
        facts = task_facts(watcher, run)
        if run.state != "success":
            problems.append(f"{run.dag_id} ended {run.state}: {watcher.describe()}")
        for (dag_id, key), ti in deferred.items():
            if dag_id != run.dag_id:
                continue
            files = trigger_log_files(stack, facts[key].ti)
            fired = {job_id for job_id, text in files.items() if FIRED_MARK in text}
            if not fired or not fired <= new_triggerers:
                problems.append(f"{dag_id}.{key} fired by {fired}, not by the new triggerer {new_triggerers}")
            if facts[key].ti["try_number"] != ti["try_number"]:
                problems.append(f"{dag_id}.{key} was retried: try {facts[key].ti['try_number']}")
        submitted += [f.xcom["akool_id"] for f in facts.values() if f.operator in SUBMITTING_OPERATORS]
    assert not problems, "\n".join(problems)
    new_jobs = set(after["jobs"]) - set(before["jobs"])
    submissions = sum(after["counts"][name] - before["counts"][name] for name in SUBMIT_ENDPOINTS)
    assert all(submitted), submitted
    assert len(set(submitted)) == len(submitted) == submissions, (submitted, submissions)
    assert new_jobs == set(submitted)


# --- A user marks a deferred reage task failed --------------------------------------------------------


def test_marking_a_deferred_reage_task_failed_cancels_its_akool_job(stack: AirflowStack) -> None:
    before = stack.ledger()["counts"]
    with JobGate(stack) as gate:
        watcher = RunWatcher(stack, gate)
        run = watcher.start(IMAGE_REAGE_DAG)

        def reage_ti() -> dict[str, Any] | None:
            for ti in run.task_instances:
                if watcher.operator(run, ti) in REAGE_OPERATORS:
                    return ti
            return None

        def trigger_running() -> bool:
            ti = reage_ti()
            # on_kill runs only for a trigger the triggerer has started, not one merely assigned.
            return (
                ti is not None
                and ti["state"] == "deferred"
                and any("starting" in text for text in trigger_log_files(stack, ti).values())
            )

        watcher.wait_until(trigger_running, "the reage trigger runs in the triggerer")
        ti = reage_ti()
        assert ti is not None
        akool_id = xcom_value(stack, ti, "akool_id")
        job_id = xcom_value(stack, ti, "akool_job_id")
        assert stack.ledger()["jobs"][akool_id]["status"] == 2

        stack.api("PATCH", ti_path(ti), json_body={"new_state": "failed"})

        if AIRFLOW_VERSION >= (3, 3):
            deadline = time.monotonic() + 60
            while not stack.ledger()["jobs"][akool_id]["cancelled"]:
                if time.monotonic() > deadline:
                    trigger_log = "\n".join(trigger_log_files(stack, ti).values())
                    raise AssertionError(
                        f"job {akool_id} not cancelled within 60 s; trigger log:\n{trigger_log}"
                    )
                time.sleep(0.5)
        else:
            # Before 3.3 Airflow stops the trigger without telling it: wait until it has.
            watcher.wait_until(
                lambda: any("trigger completed" in text for text in trigger_log_files(stack, ti).values()),
                "the triggerer stopped the trigger",
                timeout=60,
            )
        watcher.finish()

    assert run.state == "failed"
    assert run.ti(ti_key(ti))["state"] == "failed"
    job = stack.ledger()["jobs"][akool_id]
    trigger_log = "\n".join(trigger_log_files(stack, ti).values())
    if AIRFLOW_VERSION >= (3, 3):
        assert (job["status"], job["cancelled"], job["job_id"]) == (4, True, job_id)
        assert stack.ledger()["counts"]["job_del"] - before["job_del"] == 1
        assert "invoking on_kill" in trigger_log
        assert f"Cancelled Akool job(s) {job_id}" in trigger_log
    else:
        # The documented limitation of Airflow 3.1 and 3.2: no trigger on_kill, the job runs on.
        assert not job["cancelled"]
        assert stack.ledger()["counts"]["job_del"] == before["job_del"]


# --- Last: no credential in any log of the session ----------------------------------------------------


def test_no_log_of_the_session_contains_a_secret(stack: AirflowStack, example_runs: ExampleRuns) -> None:
    logs = stack.task_logs()
    # The task logs of every run of this session (REST and files), trigger logs included.
    assert any(key.startswith("api:") for key in logs)
    assert any(".log.trigger." in key for key in logs)
    everything = {**logs, **{f"output:{name}": text for name, text in stack.component_output().items()}}
    leaks = [
        f"{name} in {where}"
        for name, value in stack.secret_values().items()
        for where, text in everything.items()
        if value in text
    ]
    leaks += [
        f"{pattern.pattern!r} matches {match.group()[:12]}... in {where}"
        for where, text in logs.items()
        for pattern in (JWT_PATTERN, BEARER_PATTERN)
        for match in pattern.finditer(text)
    ]
    assert not leaks, "\n".join(leaks)
