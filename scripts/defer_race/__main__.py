"""
Run docs/webhooks.md's upstream reproduction on the repository's stack (LocalExecutor, SQLite, loopback).

``.venv/bin/python -m scripts.defer_race [RUNS]``: runs the ``defer_race`` DAG RUNS times (default 3), one
after the other, beside one spinning process per core (the worker processes then take a second or more to
exit after deferring), and prints the tasks that did not succeed on try 1 and the scheduler's "state
mismatch" lines. Nothing of the provider is involved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.stack.airflow_stack import AirflowStack, StackConfig, StackError

DAG_ID = "defer_race"
MISMATCH = "but the task instance's state attribute is"


def main(runs: int) -> int:
    home = Path(tempfile.mkdtemp(prefix="akool-defer-race-"))
    config = StackConfig(home=home, dags_folder=Path(__file__).resolve().parent)
    failed = 0
    with AirflowStack(config) as stack:
        stack.wait_for_dags([DAG_ID])
        stack.api("PATCH", f"/dags/{DAG_ID}", json_body={"is_paused": False})
        spinners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
        ]
        try:
            for _ in range(runs):
                run_id = _trigger(stack)
                state = stack.wait_for_run(DAG_ID, run_id, timeout=900)
                bad = [
                    (ti["task_id"], ti["state"], ti["try_number"])
                    for ti in stack.task_instances(DAG_ID, run_id)
                    if ti["state"] != "success" or int(ti["try_number"]) != 1
                ]
                failed += len(bad)
                print(f"run {run_id}: {state}; not a success on try 1: {len(bad)} {bad}", flush=True)
        finally:
            for spinner in spinners:
                spinner.kill()
        scheduler_log = stack.component_output().get("scheduler.log", "")
    shutil.rmtree(home, ignore_errors=True)
    lines = [line for line in scheduler_log.splitlines() if MISMATCH in line]
    print(f"{failed} task(s) of {runs * 50} did not succeed on try 1; {len(lines)} 'state mismatch' line(s):")
    for line in lines:
        print("  ", line[:400])
    return 0


def _trigger(stack: AirflowStack) -> str:
    """Trigger a run; SQLite can answer a trigger 500 while the previous run's tasks write, so ask again."""
    for _ in range(10):
        try:
            return stack.trigger_dag(DAG_ID)
        except StackError as error:
            print(f"trigger refused, again: {str(error)[:200]}", flush=True)
            time.sleep(2)
    raise SystemExit("the API server refused to trigger the DAG 10 times")


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
