"""``make demo`` as a new user runs it: every example DAG succeeds, the summary is honest, no error line."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from airflow_provider_akool.emulator.media import sample_image

REPO = Path(__file__).resolve().parents[1]
#: An error-level line of Airflow's structured log ("[error    ]") or of the standard logging format.
ERROR_LINE = re.compile(r"\[error\s*\]|\bERROR\b|Traceback \(most recent call last\)")


def load_demo() -> ModuleType:
    """scripts/demo.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("akool_demo_script", REPO / "scripts" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One run of the demo, as `make demo` runs it, shared by the tests below (it takes ~40 s)."""
    kept = tmp_path_factory.mktemp("demo") / "kept"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "AKOOL_"))  # the demo sets up its own Airflow and emulator
    }
    env["AKOOL_DEMO_OUTPUT_PATH"] = f"{kept}/"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, kept


def test_make_demo_runs_every_example_with_no_error_line(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, kept = demo_run
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    runs = re.findall(r"^(akool_\w+|publish_\w+)\s+(\w+)\s+[\d.]+\s*$", done.stdout, flags=re.M)
    assert len(runs) >= 5, done.stdout
    assert {state for _, state in runs} == {"success"}, done.stdout
    # Nothing at error level in a run where everything succeeded (an extra link asked for a URL too
    # early used to log "XCom not found" seven times).
    errors = [line for line in output.splitlines() if ERROR_LINE.search(line)]
    assert errors == [], "\n".join(errors[:20])
    # A task that only submits says so, beside the sensor that waited for its job.
    rows = dict(re.findall(r"^akool_video_reage\s+(\w+)\s+(\S+(?: \(\w+\))?)\s", done.stdout, flags=re.M))
    assert rows["submit_video_reage"].startswith("submitted ("), done.stdout
    assert rows["wait_for_video"] == "success", done.stdout
    assert any(kept.iterdir())
    # Every result it prints outlives the demo: a kept file, never the emulator's result URL (the video's
    # too: its sensor downloads nothing, a later task keeps it).
    assert "/media/results/" not in done.stdout, done.stdout
    video = re.search(r"^akool_video_reage\s+wait_for_video\s+success\s+(\S+)\s*$", done.stdout, flags=re.M)
    assert video is not None, done.stdout
    assert Path(video.group(1)).parent == kept
    assert Path(video.group(1)).suffix == ".mp4"
    assert Path(video.group(1)).stat().st_size > 0


def test_make_demo_syncs_the_venv_quietly() -> None:
    """uv's list of every package it installed must not bury the demo's summary; errors still print."""
    dry_run = subprocess.run(
        ["make", "-n", "-W", "uv.lock", "demo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (sync,) = [line for line in dry_run.stdout.splitlines() if " sync " in line]
    assert "--quiet" in sync.split()
    assert "-qq" not in sync.split(), "errors must stay visible"


def test_make_demo_runs_the_batch_on_inputs_the_emulator_downloads_from_a_local_s3_server(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """
    The dev environment has moto's server: the batch runs on s3:// objects, which the emulator downloaded
    from that server (its ledger's digests are the sample images' own), and no signed URL or key is shown.
    """
    done, _ = demo_run
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    demo = load_demo()
    assert re.search(r"^akool_batch_reage \(S3 inputs\)\s+success\s+[\d.]+\s*$", done.stdout, flags=re.M), (
        done.stdout
    )
    reaged = re.findall(
        r"^akool_batch_reage \(S3 inputs\)\s+(reage\[\d\])\s+success\s", done.stdout, flags=re.M
    )
    assert sorted(reaged) == [f"reage[{i}]" for i in range(len(demo.S3_IMAGES))], done.stdout
    # Each row: the object, then what the emulator's ledger says it downloaded for the job's modifyImage.
    downloads = re.findall(
        r"^(reage\[\d\])\s+s3://akool_demo_s3@demo/(\S+)\s+(\d+)\s+([0-9a-f]{64})\s+yes\s*$",
        done.stdout,
        flags=re.M,
    )
    assert sorted(name for _, name, _, _ in downloads) == sorted(demo.S3_IMAGES), done.stdout
    for _, name, size, digest in downloads:
        # The bytes the emulator would serve for the sample itself, computed here independently: the
        # emulator never downloads its own URLs, so a digest in its ledger came from the S3 server.
        expected = sample_image(name, name.rsplit(".", 1)[1])
        assert digest == hashlib.sha256(expected).hexdigest(), name
        assert int(size) == len(expected), name
    assert re.search(
        r"^Inputs from a local S3 server \(moto at http://127\.0\.0\.1:\d+\): s3://", done.stdout, re.M
    )
    # Signed URLs, the placeholder keys and the server's own log stay out of everything the demo prints.
    for secret in (
        "X-Amz-Signature",
        "X-Amz-Credential",
        "Signature=",
        demo.S3_SECRET_KEY,
        demo.S3_ACCESS_KEY,
    ):
        assert secret.lower() not in output.lower(), secret
    assert "GET /demo/" not in output  # a moto request log line
    # moto's server was stopped when the demo ended.
    moto = re.search(r"moto at http://127\.0\.0\.1:(\d+)", done.stdout)
    assert moto is not None
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", int(moto.group(1))))


def test_without_moto_the_demo_says_in_one_line_how_to_get_the_s3_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    demo = load_demo()
    assert demo.s3_skipped("http://127.0.0.1:8765") is None  # the dev environment has everything
    monkeypatch.setitem(sys.modules, "moto", None)  # what a user's install without moto looks like
    skipped = demo.s3_skipped("http://127.0.0.1:8765")
    assert skipped is not None
    assert "\n" not in skipped
    assert "moto's server not installed" in skipped
    assert "pip install 'airflow-provider-akool[amazon]' 'moto[server]'" in skipped
    # Real Akool cannot reach this machine's loopback: it is skipped whatever is installed, saying why.
    assert "loopback" in demo.s3_skipped("https://openapi.akool.com")


def test_the_demo_stops_its_s3_server_on_ctrl_c() -> None:
    demo = load_demo()
    with pytest.raises(KeyboardInterrupt), demo.local_s3() as s3:  # noqa: PT012
        s3.wait_until_up()
        process = s3.process
        raise KeyboardInterrupt
    assert process.poll() is not None
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", int(s3.url.rsplit(":", 1)[1])))


def test_make_demo_leaves_out_the_dag_that_waits_for_a_person_and_says_so(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """``akool_face_swap_review`` waits for an approval: dag.test() would wait for ever, so it is not run."""
    done, _ = demo_run
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "Running akool_face_swap_review" not in done.stdout
    assert "Not run: akool_face_swap_review waits for a person to approve its result" in done.stdout
    demo = load_demo()
    from tests.support.example_dags import parse_examples

    bag = parse_examples()
    assert demo.waiting_for_a_person(bag) == ["akool_face_swap_review"]
    assert "akool_face_swap_review" not in demo.run_order(bag)
    assert set(demo.run_order(bag)) == set(bag.dag_ids) - {"akool_face_swap_review"}
