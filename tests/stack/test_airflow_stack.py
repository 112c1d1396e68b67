"""The stack's own behaviour that needs no running Airflow: its home, its banner, its ports."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
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
    choose_port,
    port_free,
)


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


def test_the_canary_notes_when_it_could_not_run(tmp_path: Path) -> None:
    """Stopped as a starved process would be, the canary notes how late it woke when it runs again."""
    import signal
    import subprocess
    import sys

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
