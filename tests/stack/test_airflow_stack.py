"""The stack's own behaviour that needs no running Airflow: its home, its banner, its ports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.stack.airflow_stack import AirflowStack, StackConfig, banner


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
