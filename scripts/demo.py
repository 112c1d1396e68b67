"""
Run the example DAGs end to end with ``dag.test()``: ``make demo``.

By default against a local Akool emulator started here on a free loopback port (no key, no network). With
``AKOOL_API_KEY`` set and ``AKOOL_BASE_URL`` unset, against the real Akool; then ``AKOOL_DEMO_MEDIA_BASE_URL``
must name a public folder with the sample images (see the DAG files). With ``AKOOL_BASE_URL`` set, against
that server (an emulator of your own, say), with ``AKOOL_API_KEY`` or the emulator's default key.

Airflow runs from a private, temporary ``AIRFLOW_HOME`` (SQLite), so nothing of yours is touched. Results
are kept in ``./demo-output/`` (``AKOOL_DEMO_OUTPUT_PATH`` changes that) and listed in a table at the end.

Against a local emulator, with moto's server and the Amazon provider installed (the dev environment has both;
otherwise the demo says how to get them and leaves this part out), the batch example also runs on images in a
private bucket: the demo starts moto's S3 server on a free loopback port, uploads sample images to it, defines
an ``aws`` connection to it (``AIRFLOW_CONN_AKOOL_DEMO_S3``, placeholder keys) and passes the batch
``s3://akool_demo_s3@demo/...`` URIs, which the operators sign and the emulator downloads, as Akool would.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "dags"
OUTPUT = REPO / "demo-output"
REAL_AKOOL = "https://openapi.akool.com"

#: The Airflow connection to the local S3 server and the bucket the demo fills.
S3_CONN_ID = "akool_demo_s3"
S3_BUCKET = "demo"
#: moto accepts any credentials; s3fs needs some to sign with. Placeholders, yet never printed.
S3_ACCESS_KEY = "AKIADEMOLOCALS3ONLY0"
S3_SECRET_KEY = "akool-demo-local-s3-placeholder-secret"
S3_REGION = "us-east-1"
#: The S3 batch: three of the batch's portraits (one, two and three faces), to keep the demo short.
S3_IMAGES = ("portrait-1-faces-1.jpg", "portrait-2-faces-2.jpg", "portrait-4-faces-3.jpg")
S3_INSTALL = "pip install 'airflow-provider-akool[amazon]' 'moto[server]'"


@contextmanager
def akool_target() -> Iterator[tuple[str, str, str]]:
    """Yield the base URL, API key and a description of the Akool to use; start the emulator if needed."""
    key, base_url = os.environ.get("AKOOL_API_KEY"), os.environ.get("AKOOL_BASE_URL")
    if base_url:
        from airflow_provider_akool.emulator.config import DEFAULT_API_KEY

        yield base_url, key or DEFAULT_API_KEY, f"Akool at {base_url} (AKOOL_BASE_URL)"
    elif key:
        if not os.environ.get("AKOOL_DEMO_MEDIA_BASE_URL"):
            sys.exit(
                "With the real Akool, set AKOOL_DEMO_MEDIA_BASE_URL to a public folder (https://.../) "
                "holding the sample images the example DAGs name, so that Akool can download them."
            )
        yield REAL_AKOOL, key, f"the real Akool at {REAL_AKOOL} (key from AKOOL_API_KEY)"
    else:
        from airflow_provider_akool.emulator import EmulatorServer

        with EmulatorServer() as emulator:
            yield emulator.url, emulator.config.api_key, f"the local Akool emulator at {emulator.url}"


def s3_skipped(akool_url: str) -> str | None:
    """Why the batch from a local S3 server cannot run here (one line saying how to get it), or None."""
    # The emulator's own rule for which URLs it downloads from (a local S3 server is on loopback).
    from airflow_provider_akool.emulator.inputs import is_loopback_url

    if not is_loopback_url(akool_url):
        return (
            f"The batch from a local S3 server runs only against a local emulator: Akool at {akool_url} "
            "cannot download from this machine's loopback."
        )
    # Found without importing them: importing the Amazon provider would import Airflow, which must not run
    # before `airflow db migrate` has written the demo's configuration. moto's server needs Flask.
    missing = []
    for module, what in (
        ("moto.server", "moto's server"),
        ("flask_cors", "moto's server"),
        ("s3fs", "s3fs"),
    ):
        if not _installed(module) and what not in missing:
            missing.append(what)
    try:
        importlib.metadata.distribution("apache-airflow-providers-amazon")
    except importlib.metadata.PackageNotFoundError:
        missing.append("the Amazon provider")
    if missing:
        return (
            f"Not shown: a batch whose inputs come from a local S3 server ({', '.join(missing)} not "
            f"installed); to see it: {S3_INSTALL}"
        )
    return None


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (its parent packages are imported to find it, not it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


class LocalS3:
    """
    moto's S3 server in a process of its own on ``127.0.0.1``, started by :func:`local_s3`.

    A process, not moto's in-process server: its request log prints every URL, signed ones included, and
    goes to a temporary file rather than the demo's console.

    :param port: The port it listens on.
    :param process: The server process.
    :param log: Where its output goes.
    """

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = process
        self.log = log
        #: Object URI -> SHA-256 of what was uploaded.
        self.uploaded: dict[str, str] = {}

    def connection(self) -> str:
        """The JSON of the ``aws`` connection to this server, for ``AIRFLOW_CONN_AKOOL_DEMO_S3``."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": S3_ACCESS_KEY,
                "password": S3_SECRET_KEY,
                "extra": {"endpoint_url": self.url, "region_name": S3_REGION},
            }
        )

    def wait_until_up(self, timeout: float = 60.0) -> None:
        """Wait until the server answers (it started while Airflow prepared its database)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"moto's S3 server did not start on {self.url}:\n{tail}")

    def fill(self, samples_url: str) -> list[str]:
        """Create the bucket and upload :data:`S3_IMAGES`, fetched from the emulator; return their URIs."""
        import boto3
        import requests

        self.wait_until_up()
        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name=S3_REGION,
        )
        client.create_bucket(Bucket=S3_BUCKET)
        for name in S3_IMAGES:
            response = requests.get(f"{samples_url}{name}", timeout=30)
            response.raise_for_status()
            client.put_object(Bucket=S3_BUCKET, Key=name, Body=response.content)
            uri = f"s3://{S3_CONN_ID}@{S3_BUCKET}/{name}"
            self.uploaded[uri] = hashlib.sha256(response.content).hexdigest()
        return list(self.uploaded)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def local_s3() -> Iterator[LocalS3]:
    """Start moto's S3 server on a free loopback port; stop it on the way out, however the demo ends."""
    with tempfile.TemporaryFile(prefix="akool-demo-moto-") as log:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            yield LocalS3(port, process, log)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def point_airflow_at(home: Path) -> None:
    """Point Airflow at a private home and the repository's DAGs: before anything imports Airflow."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # dag.test() logs every step of every task; the table at the end is the demo's output.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def prepare_airflow(home: Path) -> None:
    """Migrate the database of Airflow's private home."""
    print(f"Preparing Airflow in {home} ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def results_of(dag: Any, dag_run: Any) -> list[tuple[str, str, str]]:
    """Return (task, status, where) of every result an Akool operator or sensor of the run returned."""
    rows = []
    for ti in sorted(dag_run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        task = dag.get_task(ti.task_id)
        if not task.operator_class.__module__.startswith("airflow_provider_akool."):
            continue
        # A task that only submits returns the status at submission; a later task (a sensor) waits for it.
        partial = getattr(task, "partial_kwargs", None) or {}
        waited = partial.get("wait_for_completion", getattr(task, "wait_for_completion", True))
        value = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
        for result in value if isinstance(value, list) else [value]:
            if isinstance(result, dict) and {"id", "status", "url"} <= set(result):
                name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
                status = str(result["status"]) if waited is not False else f"submitted ({result['status']})"
                rows.append((name, status, str(result.get("output_path") or kept_elsewhere(result))))
    return rows


def kept_elsewhere(result: dict[str, Any]) -> str:
    """
    A result its own task did not keep (a sensor's): the file a later task kept in the demo's folder under the
    job's id, else its URL (the emulator's URLs die with the demo, so a kept file is the one worth showing).
    """
    folder = Path(os.environ.get("AKOOL_DEMO_OUTPUT_PATH", OUTPUT))
    kept = sorted(folder.glob(f"{result['id']}.*")) if folder.is_dir() else []
    return str(kept[0].resolve()) if kept else str(result["url"])


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [header, tuple("-" * width for width in widths), *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines
    )


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="akool-demo-airflow-"))
    point_airflow_at(home)
    try:
        with akool_target() as (base_url, key, described), ExitStack() as stack:
            skipped = s3_skipped(base_url)
            # Started first: moto's server starts while Airflow prepares its database.
            s3 = None if skipped else stack.enter_context(local_s3())
            prepare_airflow(home)
            os.environ["AIRFLOW_CONN_AKOOL_DEFAULT"] = json.dumps(
                {"conn_type": "akool", "host": base_url, "password": key}
            )
            emulated = base_url != REAL_AKOOL
            os.environ.setdefault("AKOOL_DEMO_MEDIA_BASE_URL", f"{base_url}/media/samples/")
            os.environ.setdefault("AKOOL_DEMO_POLL_INTERVAL", "0.5" if emulated else "10")
            os.environ.setdefault("AKOOL_DEMO_OUTPUT_PATH", f"{OUTPUT}/")
            if s3 is not None:
                os.environ[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = s3.connection()
            print(f"Using {described}", flush=True)
            return run_examples(base_url, s3, skipped)
    finally:
        shutil.rmtree(home, ignore_errors=True)


#: DAGs with this tag wait for a person (a human-in-the-loop step): the demo does not run them.
WAITS_FOR_A_PERSON = "human-in-the-loop"


def waiting_for_a_person(bag: Any) -> list[str]:
    """The DAGs that wait for a person's answer: ``dag.test()`` would wait for it forever."""
    return sorted(dag_id for dag_id in bag.dag_ids if WAITS_FOR_A_PERSON in (bag.dags[dag_id].tags or ()))


def run_order(bag: Any) -> list[str]:
    """
    Every DAG id but those that wait for a person, those scheduled on assets last: run by hand after their
    producers, they find the asset events of this demo (``publish_product_photos`` reads the files
    ``akool_background_change`` kept).
    """
    skipped = set(waiting_for_a_person(bag))

    def scheduled_on_assets(dag_id: str) -> bool:
        # By name: the class lives in airflow.timetables on 3.1 and in the task SDK on 3.2+.
        return type(bag.dags[dag_id].timetable).__name__ == "AssetTriggeredTimetable"

    return sorted(
        (dag_id for dag_id in bag.dag_ids if dag_id not in skipped),
        key=lambda dag_id: (scheduled_on_assets(dag_id), dag_id),
    )


def run_s3_batch(bag: Any, base_url: str, s3: LocalS3) -> tuple[Any, list[tuple[str, ...]]]:
    """
    Run the batch example on images in the local S3 server; return its run and, per reage task, the object,
    what the emulator downloaded (bytes, SHA-256, read from its ledger) and whether it is what was uploaded.
    """
    from airflow_provider_akool.emulator.client import EmulatorClient

    uris = s3.fill(f"{base_url}/media/samples/")
    print(f"Running akool_batch_reage with inputs from a local S3 server ({s3.url}) ...", flush=True)
    dag = bag.dags["akool_batch_reage"]
    dag_run = dag.test(run_conf={"images": uris})
    jobs = EmulatorClient(base_url).ledger()["jobs"]
    rows: list[tuple[str, ...]] = []
    for ti in sorted(dag_run.get_task_instances(), key=lambda ti: ti.map_index):
        if ti.task_id != "reage":
            continue
        result = ti.xcom_pull(task_ids="reage", map_indexes=ti.map_index)
        uri = uris[ti.map_index]
        job = jobs.get(result["id"], {}) if isinstance(result, dict) else {}
        fetched = [item for item in job.get("fetched_inputs", []) if item["field"] == "modifyImage"]
        if not fetched:
            rows.append((f"reage[{ti.map_index}]", uri, "-", "not downloaded", "no"))
            continue
        digest = fetched[0]["sha256"] or f"failed: {fetched[0]['error']}"
        same = "yes" if digest == s3.uploaded[uri] else "no"
        rows.append((f"reage[{ti.map_index}]", uri, str(fetched[0]["bytes"]), digest, same))
    return dag_run, rows


def run_examples(base_url: str, s3: LocalS3 | None, s3_skipped: str | None) -> int:
    """Run every DAG of the dags folder with dag.test() and print what ran and where the results are."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"Could not load {path}:\n{error}", file=sys.stderr)
        return 1
    runs, results = [], []
    for dag_id in run_order(bag):
        print(f"Running {dag_id} ...", flush=True)
        started = time.monotonic()
        dag_run = bag.dags[dag_id].test()
        runs.append((dag_id, str(dag_run.state), f"{time.monotonic() - started:.1f}"))
        results += [(dag_id, *row) for row in results_of(bag.dags[dag_id], dag_run)]
    downloads: list[tuple[str, ...]] = []
    if s3 is not None and "akool_batch_reage" in bag.dags:
        started = time.monotonic()
        dag_run, downloads = run_s3_batch(bag, base_url, s3)
        label = "akool_batch_reage (S3 inputs)"
        runs.append((label, str(dag_run.state), f"{time.monotonic() - started:.1f}"))
        results += [(label, *row) for row in results_of(bag.dags["akool_batch_reage"], dag_run)]
    print()
    print(table(runs, ("DAG", "state", "seconds")))
    print()
    print(table(results, ("DAG", "task", "status", "result")) if results else "No results.")
    if s3 is not None and s3.uploaded:
        print(f"\nInputs from a local S3 server (moto at {s3.url}): {', '.join(s3.uploaded)}")
        print("each signed by the reage operator and downloaded by the emulator, as Akool would:\n")
        print(table(downloads, ("task", "object", "bytes", "sha256 the emulator downloaded", "as uploaded")))
    if s3_skipped:
        print(f"\n{s3_skipped}")
    for dag_id in waiting_for_a_person(bag):
        print(
            f"\nNot run: {dag_id} waits for a person to approve its result. Run it in `make airflow` and "
            "answer it under the task's Required Actions (see the DAG's docs)."
        )
    kept = os.environ["AKOOL_DEMO_OUTPUT_PATH"]
    print(f"\nKept results (where a DAG keeps them) are under {kept}; Akool's own URLs last 7 days.")
    succeeded = all(state == "success" for _, state, _ in runs)
    return 0 if succeeded and all(row[-1] == "yes" for row in downloads) else 1


if __name__ == "__main__":
    sys.exit(main())
