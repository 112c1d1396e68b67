"""
How long the stack takes to start is stated once: in the table of docs/airflow-stack.md that
``make airflow-figures`` measures. Every other page, comment and log line points there, so no figure can
drift from the measurement (the log said 40 s, the README 35 s, the Celery docs 70 s, when 23 s and 40 s
were measured).
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from tests.stack.airflow_stack import FIGURES_SECTION

REPO = Path(__file__).resolve().parents[2]
FIGURES_DOC = REPO / "docs" / "airflow-stack.md"
#: A duration as prose gives one: "about 35 s", "after about 70 seconds", "about a minute", "in 40 s".
DURATION = re.compile(
    r"\babout (?:a|one|two) minutes?\b|\b(?:about|after|in|within) \d+(?:\.\d+)? ?(?:s|seconds)\b", re.I
)
START = re.compile(r"\bstart(?:s|ed|ing|-up)?\b|\bprints\b", re.I)


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _figures_section() -> str:
    text = FIGURES_DOC.read_text()
    start = text.index(f"## {FIGURES_SECTION}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _text_blocks(path: Path) -> list[str]:
    """A file's prose: Markdown outside tables, a Makefile's comments, Python comments and strings."""
    text = path.read_text()
    if path.suffix == ".md":
        # The figures table itself is where the numbers belong.
        kept = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("|"))
        return re.split(r"\n\s*\n", kept)
    if path.name == "Makefile":
        return re.findall(r"(?:^#.*\n)+", text, flags=re.M)
    # Python 3.12 splits f-strings into FSTRING_MIDDLE tokens.
    kinds = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return [token.string for token in tokens if token.type in kinds]


def _places() -> list[Path]:
    return [
        REPO / "README.md",
        REPO / "Makefile",
        *sorted((REPO / "docs").glob("*.md")),
        *sorted((REPO / "tests" / "stack").glob("*.py")),
        *sorted((REPO / "tests" / "e2e").rglob("*.py")),
        *sorted((REPO / "scripts").glob("*.py")),
    ]


def test_no_page_comment_or_log_line_states_a_start_up_time_of_its_own() -> None:
    stated = [
        f"{path.relative_to(REPO)}: {sentence}"
        for path in _places()
        for block in _text_blocks(path)
        for sentence in re.split(r"(?<=\.)\s+", " ".join(block.split()))
        if DURATION.search(sentence) and START.search(sentence)
    ]
    assert not stated, (
        f"state start-up times only in the table under '{FIGURES_SECTION}' in docs/airflow-stack.md "
        "(make airflow-figures measures them) and point there:\n" + "\n".join(stated)
    )


def test_the_figures_table_gives_the_start_up_time_of_both_stacks() -> None:
    rows = [line for line in _figures_section().splitlines() if line.startswith("|")]
    assert "`make airflow`" in rows[0]
    assert "`make airflow ARGS=--celery`" in rows[0]
    first_start = [row for row in rows if "banner" in row and "first start" in row]
    assert len(first_start) == 1, rows
    cells = [cell.strip() for cell in first_start[0].strip("|").split("|")]
    assert all(re.fullmatch(r"\d+ s", cell) for cell in cells[1:3]), cells


def test_the_readme_points_to_the_figures() -> None:
    readme = (REPO / "README.md").read_text()
    assert f"(docs/airflow-stack.md#{_anchor(FIGURES_SECTION)})" in readme
