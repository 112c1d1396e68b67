"""keep_result against the emulator over real HTTP: where the file goes, atomicity, memory, expiry."""

from __future__ import annotations

import hashlib
import logging
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec
import pytest

from airflow_provider_akool.emulator import EmulatorClient, EmulatorServer
from airflow_provider_akool.emulator.media import pattern_block
from airflow_provider_akool.exceptions import (
    AkoolConnectionError,
    AkoolOutputError,
    AkoolOutputExistsError,
    AkoolOutputPathError,
    AkoolResultHostError,
    AkoolResultUnavailableError,
    AkoolValidationError,
)
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.storage import check_output_free, check_output_path, keep_result, public_url
from tests.support.connections import ConnectionFactory
from tests.support.mounts import read_only_folder, small_disk
from tests.support.samples import small_background_change

AKOOL_ID = "65a1b2c3d4e5f60718293a4b"
FAST: dict[str, Any] = {"retry_delay": 0.01, "retry_max_delay": 0.05}


def read_uri(uri: str) -> bytes:
    """Read a kept file back as a user would: through ObjectStoragePath, or plain fsspec on Airflow 3.1."""
    from airflow.sdk import ObjectStoragePath

    try:
        return ObjectStoragePath(uri).read_bytes()
    except ValueError:  # 3.1 knows only the schemes of installed providers; 3.2+ falls back to fsspec
        import fsspec

        with fsspec.open(uri, "rb") as file:
            return bytes(file.read())


def memory_uri(uri: str) -> str:
    """Airflow 3.1 spells memory:// locations with the root slash (memory:///x); 3.2+ does not."""
    return uri.replace("memory:///", "memory://", 1)


def blob(size: int) -> bytes:
    """What ``/media/blob/{size}`` serves."""
    block = pattern_block()
    return (block * (size // len(block) + 1))[:size]


def bg_result(hook: AkoolHook, emulator: EmulatorServer, emulator_client: EmulatorClient) -> tuple[str, str]:
    """Run a background change to success; return its ``_id`` and result URL."""
    job = hook.submit_background_change(**small_background_change(emulator))
    emulator_client.advance_clock(2)
    result = hook.get_image_result(job.id)
    assert result.image_url
    return job.id, result.image_url


@pytest.fixture
def memory_fs() -> Iterator[Any]:
    """fsspec's in-memory filesystem, emptied after the test (it is one store per process)."""
    fs = fsspec.filesystem("memory")
    root = f"akool-test-{uuid.uuid4().hex[:8]}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def files_under(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class TestWhereTheFileGoes:
    def test_a_local_folder_gets_the_id_and_the_extension_of_the_url(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        hook = AkoolHook()
        akool_id, url = bg_result(hook, emulator, emulator_client)
        folder = tmp_path / "new" / "results"
        with caplog.at_level(logging.INFO, logger="airflow_provider_akool.storage"):
            kept = keep_result(hook, url, f"{folder}/", akool_id=akool_id)
        assert kept == str(folder / f"{akool_id}.png")
        data = Path(kept).read_bytes()
        assert data.startswith(b"\x89PNG")
        assert files_under(folder) == [f"{akool_id}.png"]
        kept_lines = [r for r in caplog.records if r.name == "airflow_provider_akool.storage"]
        assert [r.levelno for r in kept_lines] == [logging.INFO]
        assert akool_id in kept_lines[0].getMessage()
        assert str(len(data)) in kept_lines[0].getMessage()

    def test_an_existing_directory_without_a_slash_is_a_folder(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        kept = keep_result(AkoolHook(), f"{emulator.url}/media/blob/1000", tmp_path, akool_id=AKOOL_ID)
        # No extension in the URL: the Content-Type (application/octet-stream) gives ``.bin``.
        assert kept == str(tmp_path / f"{AKOOL_ID}.bin")
        assert Path(kept).read_bytes() == blob(1000)

    def test_a_full_file_name_is_kept_as_given(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        name = tmp_path / "out" / "campaign-2024.jpeg"
        kept = keep_result(AkoolHook(), f"{emulator.url}/media/blob/5000", str(name), akool_id=AKOOL_ID)
        assert kept == str(name)
        assert name.read_bytes() == blob(5000)
        assert files_under(name.parent) == ["campaign-2024.jpeg"]

    def test_a_file_uri_is_returned_as_a_uri(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        kept = keep_result(
            AkoolHook(), f"{emulator.url}/media/blob/2048", f"file://{tmp_path}/kept/", akool_id=AKOOL_ID
        )
        assert kept == f"file://{tmp_path}/kept/{AKOOL_ID}.bin"
        assert (tmp_path / "kept" / f"{AKOOL_ID}.bin").read_bytes() == blob(2048)

    def test_an_existing_file_is_replaced_with_overwrite(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        name = tmp_path / "result.png"
        name.write_bytes(b"old")
        keep_result(AkoolHook(), f"{emulator.url}/media/blob/300", name, akool_id=AKOOL_ID, overwrite=True)
        assert name.read_bytes() == blob(300)
        assert files_under(tmp_path) == ["result.png"]

    def test_a_non_local_fsspec_filesystem(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        memory_fs: Any,
    ) -> None:
        fs, root = memory_fs
        hook = AkoolHook()
        akool_id, url = bg_result(hook, emulator, emulator_client)
        kept = keep_result(hook, url, f"memory://{root}/results/", akool_id=akool_id)
        assert memory_uri(kept) == f"memory://{root}/results/{akool_id}.png"
        assert fs.cat_file(f"{root}/results/{akool_id}.png").startswith(b"\x89PNG")
        assert [Path(p).name for p in fs.ls(f"{root}/results", detail=False)] == [f"{akool_id}.png"]

        # The returned location opens again as an ObjectStoragePath, as a downstream task would.
        assert read_uri(kept) == fs.cat_file(f"{root}/results/{akool_id}.png")

    def test_a_full_name_on_a_non_local_filesystem(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, memory_fs: Any
    ) -> None:
        fs, root = memory_fs
        kept = keep_result(
            AkoolHook(), f"{emulator.url}/media/blob/4096", f"memory://{root}/a/b.dat", akool_id=AKOOL_ID
        )
        assert memory_uri(kept) == f"memory://{root}/a/b.dat"
        assert fs.cat_file(f"{root}/a/b.dat") == blob(4096)

    def test_an_object_storage_path_naming_an_existing_folder(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, memory_fs: Any
    ) -> None:
        from airflow.sdk import ObjectStoragePath

        fs, root = memory_fs
        fs.makedirs(f"{root}/existing", exist_ok=True)
        kept = keep_result(
            AkoolHook(),
            f"{emulator.url}/media/blob/64",
            ObjectStoragePath(f"memory://{root}/existing"),
            akool_id=AKOOL_ID,
        )
        assert memory_uri(kept) == f"memory://{root}/existing/{AKOOL_ID}.bin"
        assert fs.cat_file(f"{root}/existing/{AKOOL_ID}.bin") == blob(64)

    def test_the_connection_id_of_a_uri_is_kept_in_the_returned_location(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        # ObjectStoragePath's convention: ``scheme://<conn_id>@<path>``; a downstream task reopens it as is.
        kept = keep_result(
            AkoolHook(), f"{emulator.url}/media/blob/10", f"file://my_files@{tmp_path}/", akool_id=AKOOL_ID
        )
        assert kept == f"file://my_files@{tmp_path}/{AKOOL_ID}.bin"
        assert (tmp_path / f"{AKOOL_ID}.bin").read_bytes() == blob(10)

    def test_a_connection_for_a_scheme_no_provider_serves_is_refused_before_any_request(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, emulator_client: EmulatorClient
    ) -> None:
        with pytest.raises(AkoolValidationError, match="my_store"):
            keep_result(
                AkoolHook(),
                f"{emulator.url}/media/blob/10",
                "memory://my_store@bucket/out/",
                akool_id=AKOOL_ID,
            )
        assert emulator_client.counts()["media"] == 0

    @pytest.mark.parametrize("output_path", ["", "   ", None, 42])
    def test_a_bad_output_path_is_refused_before_any_request(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        output_path: Any,
    ) -> None:
        with pytest.raises(AkoolValidationError, match="output_path"):
            keep_result(AkoolHook(), f"{emulator.url}/media/blob/10", output_path, akool_id=AKOOL_ID)
        assert emulator_client.counts()["media"] == 0

    @pytest.mark.parametrize("akool_id", ["", "../etc/passwd", ".hidden", "a/b"])
    def test_an_id_that_is_not_a_file_name_is_refused(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path, akool_id: str
    ) -> None:
        with pytest.raises(AkoolValidationError, match="akool_id"):
            keep_result(AkoolHook(), f"{emulator.url}/media/blob/10", tmp_path, akool_id=akool_id)
        assert files_under(tmp_path) == []


class TestStreaming:
    def test_a_large_result_streams_in_constant_memory(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        size = 50 * 1024 * 1024
        tracemalloc.start()
        try:
            kept = keep_result(AkoolHook(), f"{emulator.url}/media/blob/{size}", tmp_path, akool_id=AKOOL_ID)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # The emulator runs in this process too: its 64 KiB chunks are part of the peak. A download held
        # in memory would peak above 50 MB; streaming stays at a few chunk sizes.
        assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while keeping {size} bytes"
        assert Path(kept).stat().st_size == size
        digest = hashlib.sha256()
        with open(kept, "rb") as kept_file:
            for piece in iter(lambda: kept_file.read(1 << 20), b""):
                digest.update(piece)
        assert digest.hexdigest() == hashlib.sha256(blob(size)).hexdigest()


class TestFailures:
    def test_a_dropped_download_leaves_no_file_and_no_temporary(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        tmp_path: Path,
    ) -> None:
        emulator_client.add_fault("drop", path="/media/blob", mode="mid_body")
        with pytest.raises(AkoolConnectionError):
            keep_result(AkoolHook(**FAST), f"{emulator.url}/media/blob/500000", tmp_path, akool_id=AKOOL_ID)
        assert files_under(tmp_path) == []
        assert emulator_client.counts()["media"] == 1

    def test_a_dropped_download_on_a_non_local_filesystem_leaves_nothing(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        memory_fs: Any,
    ) -> None:
        fs, root = memory_fs
        emulator_client.add_fault("drop", path="/media/blob", mode="mid_body")
        with pytest.raises(AkoolConnectionError):
            keep_result(
                AkoolHook(**FAST),
                f"{emulator.url}/media/blob/500000",
                f"memory://{root}/out/",
                akool_id=AKOOL_ID,
            )
        assert not fs.exists(f"{root}/out") or fs.ls(f"{root}/out", detail=False) == []

    def test_fewer_bytes_than_the_content_length_is_an_error_and_leaves_nothing(self, tmp_path: Path) -> None:
        class ShortHook:
            """Serves a reply that claims 10 bytes and ends after 4, as a broken proxy could."""

            @contextmanager
            def stream_result(self, url: str, *, headers: dict[str, str]) -> Iterator[Iterator[bytes]]:
                headers.update({"content-length": "10", "content-type": "image/png"})
                yield iter([b"\x89PN", b"G"])

        with pytest.raises(AkoolConnectionError, match="4 of 10 bytes"):
            keep_result(ShortHook(), "https://cdn.example/r", tmp_path, akool_id=AKOOL_ID)  # type: ignore[arg-type]
        assert files_under(tmp_path) == []

    def test_an_expired_result_names_the_id_and_the_7_day_limit(
        self,
        akool_connection: ConnectionFactory,
        emulator: EmulatorServer,
        emulator_client: EmulatorClient,
        tmp_path: Path,
    ) -> None:
        hook = AkoolHook()
        akool_id, url = bg_result(hook, emulator, emulator_client)
        emulator_client.advance_clock(emulator.config.result_ttl_seconds + 1)
        with pytest.raises(AkoolResultUnavailableError) as raised:
            keep_result(hook, url, tmp_path, akool_id=akool_id)
        assert akool_id in str(raised.value)
        assert "7 days" in str(raised.value)
        assert raised.value.http_status == 404
        assert files_under(tmp_path) == []

    def test_a_result_that_never_existed_is_the_same_clear_error(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        with pytest.raises(AkoolResultUnavailableError, match=AKOOL_ID):
            keep_result(
                AkoolHook(), f"{emulator.url}/media/results/{AKOOL_ID}.png", tmp_path, akool_id=AKOOL_ID
            )
        assert files_under(tmp_path) == []


#: A connection whose host is a public address (never contacted: the refusals come first).
PUBLIC_AKOOL = "https://8.8.8.8"
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


@pytest.fixture
def no_request(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every HTTP request the sync path sends from now on (none, in these tests)."""
    import requests

    sent: list[str] = []
    original = requests.Session.request

    def recording(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(url)
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    return sent


@contextmanager
def redirecting_server(location: str) -> Iterator[tuple[str, list[str]]]:
    """A file server on 127.0.0.1 that redirects every request to ``location``; yields its URL and hits."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


class TestWhereAResultMayComeFrom:
    """
    A result URL comes from Akool or from a webhook callback: the worker downloads none from its own network
    (issue 20: a callback pointed a task at the cloud metadata service), unless Akool's host is there too.
    """

    @pytest.mark.parametrize(
        ("url", "kind"),
        [
            (METADATA, "link-local"),
            ("http://10.20.30.40/results/a.png", "private"),
            ("https://192.168.1.7:8443/a.png", "private"),
            ("http://[::ffff:169.254.169.254]/latest/meta-data/", "link-local"),
            ("http://localhost:9/a.png", "loopback"),
        ],
        ids=["metadata", "private", "private-https", "mapped-ipv6", "loopback-by-name"],
    )
    def test_a_result_on_a_non_public_address_is_refused_before_any_request(
        self,
        akool_connection: ConnectionFactory,
        no_request: list[str],
        tmp_path: Path,
        url: str,
        kind: str,
    ) -> None:
        akool_connection(host=PUBLIC_AKOOL)
        with pytest.raises(AkoolResultHostError) as raised:
            keep_result(AkoolHook(), url, f"{tmp_path}/", akool_id=AKOOL_ID)
        message = str(raised.value)
        assert f"a {kind} address" in message
        assert "refused to download the result from" in message
        assert "169.254.169.254" in message  # says why such addresses are refused
        assert not raised.value.task_retry_can_fix
        assert no_request == []
        assert files_under(tmp_path) == []

    def test_a_redirect_to_the_metadata_address_is_refused_before_it_is_followed(
        self,
        akool_connection: ConnectionFactory,
        monkeypatch: pytest.MonkeyPatch,
        no_request: list[str],
        tmp_path: Path,
    ) -> None:
        from airflow_provider_akool import result_hosts

        akool_connection(host=PUBLIC_AKOOL)
        with redirecting_server(METADATA) as (cdn, hits):
            # The redirecting server stands for a public CDN: its loopback address is taken as a public one.
            resolve = result_hosts.resolve

            def as_public(url: str) -> tuple[str, list[str]]:
                return ("127.0.0.1", ["8.8.4.4"]) if url.startswith(cdn) else resolve(url)

            monkeypatch.setattr(result_hosts, "resolve", as_public)
            redirected = r"from 169\.254\.169\.254 \(where 127\.0\.0\.1 redirected the download\)"
            with pytest.raises(AkoolResultHostError, match=redirected):
                keep_result(AkoolHook(), f"{cdn}/results/a.png", f"{tmp_path}/", akool_id=AKOOL_ID)
        assert hits == ["/results/a.png"]
        assert no_request == [f"{cdn}/results/a.png"]
        assert files_under(tmp_path) == []

    async def test_the_async_download_refuses_the_same(
        self, akool_connection: ConnectionFactory, tmp_path: Path
    ) -> None:
        akool_connection(host=PUBLIC_AKOOL)
        hook = AkoolHook()
        try:
            with pytest.raises(AkoolResultHostError, match="link-local"):
                async with hook.astream_result(METADATA):
                    pass
        finally:
            await hook.aclose()

    def test_results_on_loopback_are_kept_when_the_connection_is_on_loopback_too(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        # The emulator's case: its host is 127.0.0.1 and so are its results, here named "localhost".
        url = f"{emulator.url}/media/blob/1000".replace("127.0.0.1", "localhost")
        kept = keep_result(AkoolHook(), url, tmp_path, akool_id=AKOOL_ID)
        assert Path(kept).read_bytes() == blob(1000)


def keep_at_once(emulator: EmulatorServer, name: Path, sizes: tuple[int, int]) -> dict[int, Any]:
    """Keep two different results onto ``name`` from two threads, both downloaded before either moves."""
    both_downloaded = threading.Barrier(2)
    outcomes: dict[int, Any] = {}

    class WaitingHook(AkoolHook):
        @contextmanager
        def stream_result(self, url: str, *, headers: dict[str, str]) -> Iterator[Iterator[bytes]]:
            with super().stream_result(url, headers=headers) as chunks:
                received = list(chunks)
            both_downloaded.wait(timeout=10)
            yield iter(received)

    def keep(size: int) -> None:
        try:
            outcomes[size] = keep_result(
                WaitingHook(), f"{emulator.url}/media/blob/{size}", name, akool_id=AKOOL_ID
            )
        except BaseException as error:
            outcomes[size] = error

    threads = [threading.Thread(target=keep, args=(size,)) for size in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


class TestNeverReplacedSilently:
    """A kept result never replaces a file another task wrote, unless ``overwrite=True``."""

    def test_an_existing_file_with_other_bytes_is_left_as_it_is_and_the_error_says_where_the_result_is(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        name = tmp_path / "result.png"
        name.write_bytes(b"another task's result")
        url = f"{emulator.url}/media/blob/300"

        with pytest.raises(AkoolOutputExistsError) as raised:
            keep_result(AkoolHook(), url, name, akool_id=AKOOL_ID)

        assert name.read_bytes() == b"another task's result"
        assert files_under(tmp_path) == ["result.png"]  # no temporary left behind
        message = str(raised.value)
        assert str(name) in message
        assert AKOOL_ID in message
        assert "overwrite" in message
        assert url in message
        assert "7 days" in message
        assert "until about" in message
        assert raised.value.url == url
        assert raised.value.path == str(name)
        assert raised.value.expires_at
        assert raised.value.expires_at in message
        # Fail without retry: a retry would meet the same file.
        from airflow.providers.common.compat.sdk import AirflowFailException

        assert isinstance(raised.value, AirflowFailException)

    def test_the_same_bytes_already_there_are_a_retry_keeping_its_own_result(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        url = f"{emulator.url}/media/blob/5000"
        first = keep_result(AkoolHook(), url, tmp_path / "r.bin", akool_id=AKOOL_ID)
        again = keep_result(AkoolHook(), url, tmp_path / "r.bin", akool_id=AKOOL_ID)

        assert first == again == str(tmp_path / "r.bin")
        assert (tmp_path / "r.bin").read_bytes() == blob(5000)
        assert files_under(tmp_path) == ["r.bin"]

    def test_a_folder_keeps_each_result_under_its_own_id_and_a_second_keep_of_one_id_is_accepted(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        other_id = "65a1b2c3d4e5f60718293a4c"
        keep_result(AkoolHook(), f"{emulator.url}/media/blob/10", f"{tmp_path}/", akool_id=AKOOL_ID)
        keep_result(AkoolHook(), f"{emulator.url}/media/blob/20", f"{tmp_path}/", akool_id=other_id)
        keep_result(AkoolHook(), f"{emulator.url}/media/blob/10", f"{tmp_path}/", akool_id=AKOOL_ID)

        assert files_under(tmp_path) == [f"{AKOOL_ID}.bin", f"{other_id}.bin"]
        assert (tmp_path / f"{other_id}.bin").read_bytes() == blob(20)

    def test_two_keepers_onto_one_name_at_once_exactly_one_wins_and_the_file_is_whole(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        # Both downloads are complete before either moves its file into place: a check-then-rename
        # would let both pass the check. Repeated, since the interleaving is the scheduler's.
        sizes = (70_000, 70_001)
        for round_number in range(15):
            name = tmp_path / f"round-{round_number}.bin"
            outcomes = keep_at_once(emulator, name, sizes)

            winners = [size for size, outcome in outcomes.items() if outcome == str(name)]
            losers = [
                size for size, outcome in outcomes.items() if isinstance(outcome, AkoolOutputExistsError)
            ]
            assert len(winners) == 1, outcomes
            assert len(losers) == 1, outcomes
            assert name.read_bytes() == blob(winners[0])
        assert sorted(files_under(tmp_path)) == sorted(f"round-{n}.bin" for n in range(15))

    def test_two_processes_keeping_onto_one_name_at_once_exactly_one_wins(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        import multiprocessing

        name = tmp_path / "result.bin"
        context = multiprocessing.get_context("fork")
        start = context.Barrier(2)
        results = context.Queue()
        sizes = (200_000, 200_001)

        def keep(size: int) -> None:
            start.wait(timeout=10)
            try:
                keep_result(AkoolHook(), f"{emulator.url}/media/blob/{size}", name, akool_id=AKOOL_ID)
                results.put((size, "kept"))
            except AkoolOutputExistsError:
                results.put((size, "refused"))
            except BaseException as error:  # pragma: no cover - reported by the assertion below
                results.put((size, repr(error)))

        workers = [context.Process(target=keep, args=(size,)) for size in sizes]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        outcomes = dict(results.get(timeout=5) for _ in sizes)

        assert sorted(outcomes.values()) == ["kept", "refused"], outcomes
        (winner,) = (size for size, outcome in outcomes.items() if outcome == "kept")
        assert name.read_bytes() == blob(winner)
        assert files_under(tmp_path) == ["result.bin"]

    def test_on_a_non_local_filesystem_an_existing_file_is_not_replaced(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, memory_fs: Any
    ) -> None:
        fs, root = memory_fs
        fs.pipe_file(f"{root}/out/r.bin", b"another task's result")
        uri = f"memory://{root}/out/r.bin"

        with pytest.raises(AkoolOutputExistsError, match="overwrite"):
            keep_result(AkoolHook(), f"{emulator.url}/media/blob/64", uri, akool_id=AKOOL_ID)
        assert fs.cat_file(f"{root}/out/r.bin") == b"another task's result"
        assert fs.ls(f"{root}/out", detail=False) == [f"/{root}/out/r.bin"]

        # The same bytes are accepted; overwrite replaces.
        fs.pipe_file(f"{root}/out/same.bin", blob(64))
        keep_result(
            AkoolHook(), f"{emulator.url}/media/blob/64", f"memory://{root}/out/same.bin", akool_id=AKOOL_ID
        )
        keep_result(AkoolHook(), f"{emulator.url}/media/blob/64", uri, akool_id=AKOOL_ID, overwrite=True)
        assert fs.cat_file(f"{root}/out/r.bin") == blob(64)
        assert sorted(Path(p).name for p in fs.ls(f"{root}/out", detail=False)) == ["r.bin", "same.bin"]


class TestWriteTimeFailures:
    """Failures that happen only while writing (after the job was paid for) say where the result is."""

    def test_a_full_disk_is_our_error_naming_the_url_and_leaves_nothing(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        url = f"{emulator.url}/media/blob/200000"
        with small_disk(tmp_path / "disk") as disk:
            with pytest.raises(AkoolOutputError) as raised:
                keep_result(AkoolHook(), url, f"{disk}/", akool_id=AKOOL_ID)
            assert files_under(disk) == []
        message = str(raised.value)
        assert url in message
        assert AKOOL_ID in message
        assert "until about" in message
        assert "7 days" in message
        assert "No space left on device" in message
        assert isinstance(raised.value.__cause__, OSError)

    def test_a_folder_that_became_a_file_is_our_error_not_a_bare_not_a_directory_error(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        (tmp_path / "blocker").write_text("a file")
        url = f"{emulator.url}/media/blob/10"
        with pytest.raises(AkoolOutputError, match="still on Akool at") as raised:
            keep_result(AkoolHook(), url, f"{tmp_path}/blocker/out/", akool_id=AKOOL_ID)
        assert url in str(raised.value)
        assert not isinstance(raised.value, OSError)

    def test_the_url_in_messages_carries_no_credentials(self) -> None:
        assert (
            public_url("https://user:secret@cdn.example:8443/r/a.jpg?sig=1")
            == "https://cdn.example:8443/r/a.jpg?sig=1"
        )
        assert public_url("https://cdn.example/r/a.jpg") == "https://cdn.example/r/a.jpg"


class TestCheckedBeforeSubmitting:
    """What :func:`check_output_path` and :func:`check_output_free` refuse, without writing anything."""

    def test_a_path_under_a_regular_file(self, tmp_path: Path) -> None:
        (tmp_path / "blocker").write_text("a file")
        for path in (
            f"{tmp_path}/blocker/out/",
            f"{tmp_path}/blocker/deeper/r.png",
            f"{tmp_path}/blocker/r.png",
        ):
            with pytest.raises(AkoolOutputPathError, match="is a file, not a folder") as raised:
                check_output_path(path)
            assert "output_path" in str(raised.value)
            assert path in str(raised.value)
        assert files_under(tmp_path) == ["blocker"]

    def test_a_folder_this_worker_cannot_write(self, tmp_path: Path) -> None:
        with read_only_folder(tmp_path / "ro") as folder:
            for path in (f"{folder}/", f"{folder}/sub/r.png", f"{folder}/r.png"):
                with pytest.raises(AkoolOutputPathError, match="cannot be written") as raised:
                    check_output_path(path)
                assert str(folder) in str(raised.value)

    def test_a_writable_folder_or_one_still_to_create_passes(self, tmp_path: Path) -> None:
        check_output_path(f"{tmp_path}/new/deeper/")
        check_output_path(f"{tmp_path}/new/r.png")
        check_output_path(f"file://{tmp_path}/r.png")
        assert files_under(tmp_path) == []  # nothing written

    @pytest.mark.parametrize(
        ("uri", "install"),
        [
            # Not s3: the dev environment has the Amazon provider (the amazon extra), which serves it.
            ("abfs://container/out/", "apache-airflow-providers-microsoft-azure"),
            ("abfs://azure_default@container/out/r.png", "apache-airflow-providers-microsoft-azure"),
            ("gs://bucket/out/", "apache-airflow-providers-google"),
            ("nosuchscheme://bucket/out/", "nosuchscheme"),
        ],
    )
    def test_a_scheme_nothing_installed_serves(
        self, uri: str, install: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_AZURE_DEFAULT", '{"conn_type": "wasb"}')
        with pytest.raises(AkoolOutputPathError, match="output_path") as raised:
            check_output_path(uri)
        assert install in str(raised.value)

    def test_a_connection_that_does_not_exist(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        with pytest.raises(AkoolOutputPathError, match=r"'no_such_files'.*does not exist"):
            check_output_path(f"file://no_such_files@{tmp_path}/")
        monkeypatch.setenv("AIRFLOW_CONN_MY_FILES", '{"conn_type": "fs"}')
        check_output_path(f"file://my_files@{tmp_path}/")

    def test_a_file_already_at_the_exact_name(self, tmp_path: Path, memory_fs: Any) -> None:
        (tmp_path / "r.png").write_bytes(b"x")
        with pytest.raises(AkoolOutputExistsError, match="no job was submitted") as raised:
            check_output_free(tmp_path / "r.png", overwrite=False)
        assert raised.value.url is None
        check_output_free(tmp_path / "r.png", overwrite=True)
        check_output_free(f"{tmp_path}/", overwrite=False)  # a folder: the name is not known yet
        check_output_free(tmp_path, overwrite=False)  # an existing directory is a folder
        check_output_free(tmp_path / "other.png", overwrite=False)
        fs, root = memory_fs
        fs.pipe_file(f"{root}/r.png", b"x")
        with pytest.raises(AkoolOutputExistsError):
            check_output_free(f"memory://{root}/r.png", overwrite=False)
