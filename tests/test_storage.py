"""keep_result against the emulator over real HTTP: where the file goes, atomicity, memory, expiry."""

from __future__ import annotations

import hashlib
import logging
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
    AkoolResultUnavailableError,
    AkoolValidationError,
)
from airflow_provider_akool.hooks.akool import AkoolHook
from airflow_provider_akool.storage import keep_result
from tests.conftest import ConnectionFactory

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
    job = hook.submit_background_change(
        origin_img=f"{emulator.url}/media/samples/product.png",
        canvas_size=(64, 48),
        modify_origin_img_size="32x24",
        overlay_origin_x=8,
        overlay_origin_y=8,
        color_code="#c9aafb",
    )
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

    def test_an_existing_file_is_replaced(
        self, akool_connection: ConnectionFactory, emulator: EmulatorServer, tmp_path: Path
    ) -> None:
        # A task retry keeps the result again under the same name.
        name = tmp_path / "result.png"
        name.write_bytes(b"old")
        keep_result(AkoolHook(), f"{emulator.url}/media/blob/300", name, akool_id=AKOOL_ID)
        assert name.read_bytes() == blob(300)

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
