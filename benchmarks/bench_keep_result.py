"""
Peak memory of keeping a large result: ``storage.keep_result`` of a 300 MB file from the emulator.

A fresh process loads everything and keeps a 1 KB file first (so imports and clients are not counted),
then keeps the big one. Two figures: how much the peak RSS (``ru_maxrss``) rose, and how far the RSS,
sampled every 5 ms during the download, rose above the RSS before it (the peak may be the imports').

    python benchmarks/bench_keep_result.py [--megabytes 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, airflow_env, emulator_process  # the benchmarks are scripts, not a package

MB = 1024 * 1024


def measure(emulator_url: str, nbytes: int, folder: Path) -> dict[str, Any]:
    """In this (fresh) process: keep a small file, then the big one; return the rise of the peak RSS."""
    from airflow_provider_akool.hooks.akool import AkoolHook
    from airflow_provider_akool.storage import keep_result

    hook = AkoolHook()
    keep_result(hook, f"{emulator_url}/media/blob/1024", folder / "warm.bin", akool_id="warm")
    process = psutil.Process()
    rss_before = process.memory_info().rss
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The peak so far may be the imports': sample the current RSS during the download as well.
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            samples.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        kept = keep_result(hook, f"{emulator_url}/media/blob/{nbytes}", folder / "result.bin", akool_id="big")
    finally:
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
    after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hook.close()
    size = Path(kept).stat().st_size
    Path(kept).unlink()
    return {
        "bytes": size,
        "peak_rss_before_mb": before_kb / 1024,
        "peak_rss_after_mb": after_kb / 1024,
        "peak_rise_mb": (after_kb - before_kb) / 1024,
        "rss_before_mb": rss_before / MB,
        "rss_max_during_mb": max(samples, default=rss_before) / MB,
        "rss_rise_during_mb": (max(samples, default=rss_before) - rss_before) / MB,
        "rss_samples": len(samples),
        "seconds": seconds,
        "mb_per_second": size / MB / seconds,
    }


def run(megabytes: int) -> dict[str, Any]:
    """Serve the emulator, measure in a fresh interpreter, return the figures."""
    with emulator_process() as emulator, tempfile.TemporaryDirectory(prefix="akool-bench-keep-") as folder:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                emulator.url,
                "--megabytes",
                str(megabytes),
                "--folder",
                folder,
            ],
            env=airflow_env(emulator.url),
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure(args.child, args.megabytes * MB, args.folder)))
        return 0
    figures = run(args.megabytes)
    print(
        f"keep_result of {figures['bytes'] / MB:.0f} MB in {figures['seconds']:.1f} s: peak RSS "
        f"{figures['peak_rss_before_mb']:.0f} -> {figures['peak_rss_after_mb']:.0f} MB "
        f"(+{figures['peak_rise_mb']:.1f} MB); RSS during the download at most "
        f"+{figures['rss_rise_during_mb']:.1f} MB over the {figures['rss_before_mb']:.0f} MB before"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"keep_result": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
