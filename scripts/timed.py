"""
Time the parts of ``make test`` and ``.ci/run``, and print them as a table against their budgets.

    python scripts/timed.py --reset                       # start a new record
    python scripts/timed.py unit -- make unit             # run a part, record its minutes and outcome
    python scripts/timed.py e2e --split tests/e2e/test_browser.py=browser --junit .reports/e2e.xml -- make e2e
    python scripts/timed.py --table                       # print the record

``--split FILE=NAME`` takes the time the tests of FILE took (from the run's JUnit XML: their calls, as
pyproject.toml's ``junit_duration_report`` says) out of the part and records it as a part of its own: the
browser tests share the e2e run's stack, whose start stays in the e2e part.
The record is a JSON-lines file, ``$PARTS_LOG`` or ``.reports/parts.jsonl``. The budgets are those of
docs/testing.md; a part over its budget is marked, and so is a total over :data:`TOTAL_BUDGET_MINUTES`.
Standard library only: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOG = Path(os.environ.get("PARTS_LOG", REPO_ROOT / ".reports" / "parts.jsonl"))

#: Minutes each part may take on the 2-core CI machine (docs/testing.md says why).
BUDGET_MINUTES = {
    "lint/type/deps/package": 2.0,
    "unit": 6.0,
    "e2e": 4.0,
    "browser": 2.0,
    "distributed": 9.0,
    "floor": 10.0,
}
TOTAL_BUDGET_MINUTES = 35.0


def _record(entry: dict[str, object]) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as log:
        log.write(json.dumps(entry) + "\n")


def _seconds_of(junit: Path, test_file: str) -> float:
    """The seconds the tests of ``test_file`` took in a JUnit XML report (0 if it has none)."""
    if not junit.is_file():
        return 0.0
    module = test_file.removesuffix(".py").replace("/", ".")
    total = 0.0
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.get("classname", "").startswith(module):
            total += float(case.get("time") or 0.0)
    return total


def run_part(name: str, command: list[str], splits: list[str], junit: Path | None) -> int:
    """Run ``command`` as the part ``name``; record its minutes (less the split-off files') and outcome."""
    if junit is not None:
        junit.unlink(missing_ok=True)
    started = time.monotonic()
    code = subprocess.call(command)
    seconds = time.monotonic() - started
    for split in splits:
        test_file, _, split_name = split.partition("=")
        split_seconds = _seconds_of(junit, test_file) if junit else 0.0
        seconds -= split_seconds
        _record({"part": split_name, "seconds": split_seconds, "ok": code == 0})
    _record({"part": name, "seconds": seconds, "ok": code == 0})
    return code


def table() -> str:
    """The record as a table: each part, its minutes, its budget; then the total."""
    entries = [json.loads(line) for line in LOG.read_text().splitlines()] if LOG.is_file() else []
    order = list(BUDGET_MINUTES)
    entries.sort(key=lambda e: order.index(e["part"]) if e["part"] in order else len(order))
    lines = [f"{'part':<24} {'minutes':>8} {'budget':>8}  outcome", "-" * 54]
    total = 0.0
    for entry in entries:
        minutes = entry["seconds"] / 60
        total += minutes
        budget = BUDGET_MINUTES.get(entry["part"])
        over = " (over budget)" if budget is not None and minutes > budget else ""
        outcome = "ok" if entry["ok"] else "FAILED"
        budget_text = f"{budget:.1f}" if budget is not None else "-"
        lines.append(f"{entry['part']:<24} {minutes:>8.1f} {budget_text:>8}  {outcome}{over}")
    lines.append("-" * 54)
    over = " (over budget)" if total > TOTAL_BUDGET_MINUTES else ""
    lines.append(f"{'total':<24} {total:>8.1f} {TOTAL_BUDGET_MINUTES:>8.1f}{over}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    else:
        command = []
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", nargs="?", help="the part's name (with a command after --)")
    parser.add_argument("--reset", action="store_true", help="start a new record")
    parser.add_argument("--table", action="store_true", help="print the record as a table")
    parser.add_argument("--split", action="append", default=[], metavar="FILE=NAME")
    parser.add_argument("--junit", type=Path, help="the JUnit XML report the command writes")
    args = parser.parse_args(argv)
    if args.reset:
        LOG.unlink(missing_ok=True)
    code = 0
    if args.part:
        if not command:
            parser.error("a part needs its command after --")
        code = run_part(args.part, command, args.split, args.junit)
    if args.table:
        print(f"\nTime per part (minutes, this machine: {os.cpu_count()} cores), from {LOG}:")
        print(table())
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
