"""
Folders that fail the way real disks do: one the worker cannot write, and one that fills up.

Tests run as root here, and root ignores permission bits, so a folder is made unwritable by mounting a
read-only tmpfs on it (which refuses root too, with EROFS); as another user, ``chmod 0o555`` is enough. A
full disk is a tiny tmpfs. Each mount is removed when the block ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root with CAP_SYS_ADMIN")


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=True)


@contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """``folder`` exists, is empty and cannot be written by this process, even as root."""
    if os.geteuid() != 0:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    _mount_tmpfs(folder, "ro,size=64k")
    try:
        yield folder
    finally:
        _unmount(folder)


@contextmanager
def small_disk(folder: Path, size: str = "8k") -> Iterator[Path]:
    """``folder`` is a writable filesystem of ``size``: a larger file fails with ENOSPC mid-write."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tmpfs mount, which needs root")
    _mount_tmpfs(folder, f"size={size}")
    try:
        yield folder
    finally:
        _unmount(folder)
