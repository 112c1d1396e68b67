"""The stack's own behaviour that needs no running Airflow: its home, its banner, its ports."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.stack.airflow_stack import (
    LOOPBACK,
    AirflowStack,
    StackConfig,
    StackError,
    banner,
    build_parser,
    choose_port,
    port_free,
    setting_env,
    write_settings_into_cfg,
)
from tests.stack.airflow_stack import main as stack_main


def _prepared(home: Path) -> AirflowStack:
    stack = AirflowStack(StackConfig(home=home))
    stack.prepare_home()
    return stack


# --- The emulator's API key ----------------------------------------------------------------------------


def test_the_emulator_key_is_the_same_at_every_start_of_one_home(tmp_path: Path) -> None:
    first = _prepared(tmp_path / "home")
    again = _prepared(tmp_path / "home")
    assert again.api_key == first.api_key
    # 32 hex characters: also a clientSecret (AES-256) for signed webhooks, and never taken for an option.
    assert len(first.api_key) == 32
    assert int(first.api_key, 16) >= 0


def test_a_new_home_and_a_fresh_one_get_a_new_emulator_key(tmp_path: Path) -> None:
    kept = _prepared(tmp_path / "home").api_key
    assert _prepared(tmp_path / "other").api_key != kept
    shutil.rmtree(tmp_path / "home")  # what --fresh does
    assert _prepared(tmp_path / "home").api_key != kept


def test_the_emulator_key_is_kept_in_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    stack = _prepared(tmp_path / "home")
    assert stack.secrets_file.parent == stack.home
    assert stack.api_key in stack.secrets_file.read_text()
    assert stack.secrets_file.stat().st_mode & 0o777 == 0o600


def test_a_home_from_before_the_key_was_kept_gets_one_and_keeps_it(tmp_path: Path) -> None:
    first = _prepared(tmp_path / "home")
    secrets = json.loads(first.secrets_file.read_text())
    del secrets["emulator_api_key"]
    first.secrets_file.write_text(json.dumps(secrets))
    first.secrets_file.chmod(0o644)

    upgraded = _prepared(tmp_path / "home")
    assert len(upgraded.api_key) == 32
    assert upgraded.api_key != first.api_key
    assert upgraded.password == first.password
    assert _prepared(tmp_path / "home").api_key == upgraded.api_key
    assert upgraded.secrets_file.stat().st_mode & 0o777 == 0o600


def test_the_banner_shows_the_emulator_key_and_the_login(tmp_path: Path) -> None:
    stack = _prepared(tmp_path / "home")
    text = banner(stack, ["akool_image_reage"])
    assert stack.api_key in text
    assert f"{stack.username} / {stack.password}" in text
    assert str(stack.secrets_file) in text


# --- Ports ---------------------------------------------------------------------------------------------


def _time_wait_port() -> int:
    """A loopback port whose last connection the server closed first: the server's side is in TIME-WAIT."""
    with socket.socket() as server:
        # As uvicorn listens (the API server and the emulator of the stack stopped before). Linux lets a
        # new bind share a port with a TIME-WAIT socket only if both sockets set SO_REUSEADDR.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((LOOPBACK, 0))
        server.listen(1)
        port: int = server.getsockname()[1]
        with socket.create_connection((LOOPBACK, port)) as client:
            accepted, _ = server.accept()
            accepted.close()
            assert client.recv(1) == b""
    deadline = time.monotonic() + 5
    while not any(
        conn.status == psutil.CONN_TIME_WAIT and conn.laddr and conn.laddr.port == port
        for conn in psutil.net_connections(kind="tcp4")
    ):
        assert time.monotonic() < deadline, f"no TIME-WAIT socket on port {port}"
        time.sleep(0.01)
    return port


def test_a_port_left_in_time_wait_by_a_stopped_stack_counts_as_free() -> None:
    port = _time_wait_port()
    # What the check did before: a bind without SO_REUSEADDR fails while the TIME-WAIT lasts (60 s).
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind((LOOPBACK, port))

    assert port_free(port)
    assert choose_port(port, fall_back=False, what="API") == port


@pytest.mark.parametrize("reuse_address", [False, True], ids=["plain listener", "SO_REUSEADDR listener"])
def test_a_port_a_server_listens_on_counts_as_busy(reuse_address: bool) -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
        server.bind((LOOPBACK, 0))
        server.listen(1)
        port = server.getsockname()[1]

        assert not port_free(port)
        with pytest.raises(StackError, match=f"port {port} for the API is in use"):
            choose_port(port, fall_back=False, what="API")
        other = choose_port(port, fall_back=True, what="API")
        assert other not in (port, 0)


# --- The metadata database -------------------------------------------------------------------------------


def test_the_first_migration_writes_its_audit_row_once_the_log_table_exists(tmp_path: Path) -> None:
    # Plain `airflow db migrate` inserts its audit row before migrating: on a new database the `log` table
    # is not there yet, the insert fails (PostgreSQL logs an ERROR) and the row is lost.
    stack = _prepared(tmp_path / "home")
    stack._env = stack._build_env()
    stack._migrate_db()

    with contextlib.closing(sqlite3.connect(stack.home / "airflow.db")) as database:
        events = [row[0] for row in database.execute("SELECT event FROM log")]
        (revision,) = database.execute("SELECT version_num FROM alembic_version").fetchone()
    assert events == ["cli_migratedb"]
    assert revision


def test_the_migration_makes_celerys_result_tables_before_any_worker_starts(tmp_path: Path) -> None:
    # Left to Celery, two workers make its tables at once and PostgreSQL logs "duplicate key value" for the
    # loser's CREATE SEQUENCE: the distributed suite's clean-log test failed on it in CI.
    pytest.importorskip(
        "airflow.providers.celery",
        reason="the floor venv has no Celery provider: the --celery stack runs on the newest Airflow only",
    )
    stack = _prepared(tmp_path / "home")
    results = tmp_path / "celery-results.db"
    stack._env = stack._build_env() | {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+sqlite:///{results}",
    }
    stack._migrate_db()

    with contextlib.closing(sqlite3.connect(results)) as database:
        tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"celery_taskmeta", "celery_tasksetmeta"} <= tables


def test_the_canary_notes_when_it_could_not_run(tmp_path: Path) -> None:
    """Stopped as a starved process would be, the canary notes how late it woke when it runs again."""
    import signal

    from tests.stack.canary import read, worst_lateness

    path = tmp_path / "canary.txt"
    process = subprocess.Popen([sys.executable, "-m", "tests.stack.canary", str(path)])
    try:
        while not path.exists():  # the canary opens it as it starts
            assert process.poll() is None, "the canary exited"
            time.sleep(0.01)
        stopped_at = time.time()
        process.send_signal(signal.SIGSTOP)
        time.sleep(0.5)
        process.send_signal(signal.SIGCONT)
        noted = []
        while not noted and time.time() - stopped_at < 30:
            noted = read(path)
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert worst_lateness(noted, stopped_at, time.time()) >= 0.4, noted


# --- The settings: what airflow.cfg says, --set ------------------------------------------------------------


def _airflow_config(home: Path, *args: str) -> str:
    """Run ``airflow config ...`` in ``home`` with no AIRFLOW__* variable: what the file alone says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(home)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "config", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    return out.stdout.strip()


def test_airflow_cfg_says_the_settings_the_stack_puts_in_force_and_no_secret(tmp_path: Path) -> None:
    # Airflow writes its defaults into a new home's airflow.cfg (webhook_receiver = False); the stack's
    # processes read theirs from the environment. The file must read what is in force, secrets aside.
    stack = AirflowStack(
        StackConfig(home=tmp_path / "home", extra_env={"AIRFLOW__AKOOL__WEBHOOK_RESUME_SETTLE": "4"})
    )
    stack.prepare_home()
    stack.api_port = 8080
    assert _airflow_config(stack.home, "get-value", "akool", "webhook_receiver") == "False"
    env = stack._build_env()
    write_settings_into_cfg(stack.home / "airflow.cfg", env)
    for section, key, value in (
        ("akool", "webhook_receiver", "True"),
        ("akool", "webhook_resume_settle", "4"),  # a --set, in a section Airflow wrote
        ("core", "executor", "LocalExecutor"),
        ("core", "dags_folder", env["AIRFLOW__CORE__DAGS_FOLDER"]),
        ("api", "base_url", stack.url),
    ):
        assert _airflow_config(stack.home, "get-value", section, key) == value, (section, key)
    text = (stack.home / "airflow.cfg").read_text()
    for secret in stack.secret_values().values():
        assert secret not in text
    assert "# fernet_key = (a secret: set in each process's environment by tests/stack)" in text
    # Written again at the next start of the same home: the same file.
    write_settings_into_cfg(stack.home / "airflow.cfg", env)
    assert (stack.home / "airflow.cfg").read_text() == text


def test_a_setting_of_a_section_the_file_lacks_gets_the_section(tmp_path: Path) -> None:
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text("[core]\n# executor = x\nexecutor = SequentialExecutor\n\n[api]\nport = 1\n")
    write_settings_into_cfg(
        cfg,
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__NEW_ONE__A_KEY": "50%",
            "AIRFLOW__NEW_ONE__B_KEY": "b",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW_HOME": "/not/a/setting",
        },
    )
    parser = configparser.ConfigParser()
    parser.read(cfg)
    assert parser["core"]["executor"] == "LocalExecutor"
    assert dict(parser["api"]) == {"port": "1", "workers": "1"}
    assert dict(parser["new_one"]) == {"a_key": "50%", "b_key": "b"}
    assert "# executor = x" in cfg.read_text()  # comments are left as they are


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("akool.webhook_resume_settle=5", ("AIRFLOW__AKOOL__WEBHOOK_RESUME_SETTLE", "5")),
        ("core.parallelism=4", ("AIRFLOW__CORE__PARALLELISM", "4")),
        ("api.base_url=http://a.example/x=y", ("AIRFLOW__API__BASE_URL", "http://a.example/x=y")),
        ("akool.webhook_base_url=", ("AIRFLOW__AKOOL__WEBHOOK_BASE_URL", "")),
    ],
)
def test_set_takes_section_key_value(assignment: str, expected: tuple[str, str]) -> None:
    assert setting_env(assignment) == expected
    args = build_parser().parse_args(["--set", assignment, "--set", "core.parallelism=3"])
    assert args.settings == [assignment, "core.parallelism=3"]


@pytest.mark.parametrize("assignment", ["akool_webhook=1", "akool.=1", ".key=1", "akool.key", "a-b.key=1"])
def test_a_malformed_set_is_refused_naming_the_option_and_its_form(
    assignment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=r"--set takes section\.key=value"):
        setting_env(assignment)
    with pytest.raises(SystemExit):
        stack_main(["--set", assignment, "--home", "/nonexistent/never-started"])
    assert "--set takes section.key=value" in capsys.readouterr().err
