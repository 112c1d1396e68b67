"""
What importing each operator (and sensor) module adds to ``import airflow.sdk``: paid at every DAG parse.

A fresh interpreter imports ``airflow.sdk``, then forks once per measurement: each child times
``import <module>`` on a copy of that interpreter, as a fresh one would, without paying Airflow's own
import (seconds) again; ``gc.freeze()`` before the forks keeps the collector from copying pages a fresh
interpreter would not (checked: within the spread of fresh interpreters). Figures are medians. A second
interpreter does the same after what a DAG file with operators loads anyway (``DAG``, ``BaseOperator``,
``BaseSensorOperator``), and a third, run with ``-X importtime``, names the heaviest modules each import
brought in.

    python benchmarks/bench_imports.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, airflow_env, median, print_table  # the benchmarks are scripts, not a package

PACKAGE = ROOT / "airflow_provider_akool"
BASELINES = {
    "sdk": "import airflow.sdk",
    #: What a DAG file that uses operators imports anyway, whichever provider it uses.
    "dag": "import airflow.sdk; from airflow.sdk import DAG, BaseOperator, BaseSensorOperator",
}


def modules() -> list[str]:
    """The operator and sensor modules of the provider (the modules DAG files import)."""
    found = []
    for folder in ("operators", "sensors"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            if path.stem not in ("__init__", "base"):
                found.append(f"airflow_provider_akool.{folder}.{path.stem}")
    return found


def forked_imports(names: list[str], repeats: int, importtime: bool) -> dict[str, Any]:
    """
    In this interpreter (the baseline already imported): per module, fork ``repeats`` children that
    each import it; return the seconds each took, and with ``importtime`` the child's ``-X importtime``
    lines.
    """
    seconds: dict[str, list[float]] = {}
    lines: dict[str, list[str]] = {}
    for name in names:
        for _ in range(repeats):
            read_end, write_end = os.pipe()
            log_path = f"/tmp/akool-bench-importtime-{os.getpid()}.log"
            pid = os.fork()
            if pid == 0:  # the child: import, report, leave without running any cleanup of the parent's
                os.close(read_end)
                if importtime:
                    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    os.dup2(log, 2)
                started = time.perf_counter()
                __import__(name)
                os.write(write_end, repr(time.perf_counter() - started).encode())
                os._exit(0)
            os.close(write_end)
            with os.fdopen(read_end) as pipe:
                seconds.setdefault(name, []).append(float(pipe.read()))
            os.waitpid(pid, 0)
            if importtime:
                with open(log_path) as log_file:
                    lines[name] = log_file.read().splitlines()
                os.unlink(log_path)
    return {"seconds": seconds, "lines": lines}


def _heaviest(lines: list[str], top: int = 5) -> list[tuple[str, float]]:
    """The modules in ``-X importtime`` lines, by their own import time in ms, heaviest first."""
    found = []
    for line in lines:
        if line.startswith("import time:") and "|" in line:
            own, _, name = line.split("|")
            found.append((name.strip(), int(own.split(":")[1]) / 1000))
    return sorted(found, key=lambda item: item[1], reverse=True)[:top]


def _interpreter(baseline: str, names: list[str], repeats: int, importtime: bool) -> dict[str, Any]:
    flags = ["-X", "importtime"] if importtime else []
    out = subprocess.run(
        [
            sys.executable,
            *flags,
            __file__,
            "--child",
            baseline,
            "--repeats",
            str(repeats),
            *(["--importtime"] if importtime else []),
            *names,
        ],
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


ENV = airflow_env()


def run(repeats: int) -> list[dict[str, Any]]:
    names = modules()
    # The first interpreter of a fresh AIRFLOW_HOME writes its config: not an import cost.
    subprocess.run([sys.executable, "-c", "import airflow.sdk"], env=ENV, check=True, capture_output=True)
    over_sdk = _interpreter("sdk", names, repeats, importtime=False)["seconds"]
    over_dag = _interpreter("dag", names, repeats, importtime=False)["seconds"]
    lines = _interpreter("sdk", names, 1, importtime=True)["lines"]
    return [
        {
            "module": name,
            "ms_over_import_airflow_sdk": 1000 * median(over_sdk[name]),
            "ms_over_dag_imports": 1000 * median(over_dag[name]),
            "runs_ms": [round(1000 * value, 1) for value in over_sdk[name]],
            "heaviest_new_imports_ms": _heaviest(lines.get(name, [])),
        }
        for name in names
    ]


def table(rows: list[dict[str, Any]]) -> None:
    print_table(
        ["module", "ms over import airflow.sdk", "ms over a DAG's own imports", "heaviest new imports (ms)"],
        [
            [
                row["module"],
                f"{row['ms_over_import_airflow_sdk']:.0f}",
                f"{row['ms_over_dag_imports']:.0f}",
                ", ".join(f"{name} {ms:.0f}" for name, ms in row["heaviest_new_imports_ms"][:3]),
            ]
            for row in rows
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", choices=sorted(BASELINES), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--importtime", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        exec(BASELINES[args.child], {})  # the baseline, once, before the forks
        # Out of the collector's reach: a collection in a child would touch (and copy) every page it scans,
        # which a fresh interpreter never pays.
        gc.freeze()
        print(json.dumps(forked_imports(args.names, args.repeats, args.importtime)))
        return 0
    rows = run(args.repeats)
    table(rows)
    if args.json is not None:
        args.json.write_text(json.dumps({"imports": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
