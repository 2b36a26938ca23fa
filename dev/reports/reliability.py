"""docs/reliability.md's table: the fault tests and what each proves, from their docstrings.

``python scripts/reliability_table.py`` rewrites the table between the markers of
docs/reliability.md; ``--check`` exits 1 when the page is out of date (tests/test_reliability_doc.py).
A test is listed when its file and name match a row of :data:`FAULTS`; what it proves is the
first paragraph of its docstring, so a fault test without one is an error here.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reliability.md"
BEGIN = "<!-- reliability table: python scripts/reliability_table.py -->"
END = "<!-- end of the reliability table -->"

# (fault, test file, test names: a regular expression matched from the start of the name)
FAULTS: list[tuple[str, str, str]] = [
    ("hostile files", "tests/test_hostile_files.py", ".*"),
    ("hostile files", "tests/test_data.py", "test_a_damaged|test_an_official_size_file"),
    (
        "hostile inputs",
        "tests/test_predict.py",
        "test_a_decompression|test_a_named_pipe|test_a_file_named_like|test_non_finite",
    ),
    ("run-directory claims, concurrent runs", "tests/test_run_claims.py", ".*"),
    ("refused commands leave nothing", "tests/test_runs.py", "test_refused|test_a_refused"),
    ("interrupted writes", "tests/test_atomic.py", "test_a_failed_write|test_atomic_path|test_an_export_that_fails"),
    ("interrupted writes", "tests/test_runs.py", "test_an_interrupted_write|test_sigkill_mid_write"),
    (
        "interruption and resume",
        "tests/test_resume.py",
        "test_sigterm|test_sigint|test_an_ignored_sigint|test_a_killed",
    ),
    ("corrupt optimizer state", "tests/test_resume.py", "test_a_corrupt_optimizer"),
    ("other data than the checkpoint's", "tests/test_same_data.py", "test_eval_|test_resume_"),
    ("divergence", "tests/test_divergence.py", "test_divergence_stops|test_the_divergence_message"),
    ("full disk", "tests/test_full_disk.py", ".*"),
    ("read-only paths", "tests/test_read_only.py", ".*"),
]


def fault_tests() -> list[tuple[str, str, str, str]]:
    """``(fault, file, test, what it proves)`` for every test that :data:`FAULTS` selects, in its order."""
    rows, missing = [], []
    for fault, file, names in FAULTS:
        tree = ast.parse((ROOT / file).read_text())
        if not any(isinstance(node, ast.FunctionDef) and re.match(names, node.name) for node in tree.body):
            raise SystemExit(f"No test of {file} matches {names!r} ({fault}): renamed? Update FAULTS.")
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            if not re.match(names, node.name):
                continue
            docstring = ast.get_docstring(node)
            if not docstring:
                missing.append(f"{file}::{node.name}")
                continue
            proves = " ".join(docstring.split("\n\n")[0].split())
            rows.append((fault, file, node.name, proves))
    if missing:
        raise SystemExit("Fault tests without a docstring saying what they prove: " + ", ".join(missing))
    return rows


def table() -> str:
    """The Markdown table of :func:`fault_tests`."""
    lines = ["| fault | test | what it proves |", "| --- | --- | --- |"]
    for fault, file, test, proves in fault_tests():
        cell = proves.replace("|", r"\|")
        lines.append(f"| {fault} | `{Path(file).name}::{test}` | {cell} |")
    return "\n".join(lines)


def page_with_table(page: str) -> str:
    """``page`` with the text between :data:`BEGIN` and :data:`END` replaced by the current table."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return f"{page[:start]}\n{table()}\n{page[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/reliability.md is out of date")
    arguments = parser.parse_args(argv)
    page = PAGE.read_text()
    updated = page_with_table(page)
    if arguments.check:
        if updated != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/reliability_table.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(updated)
    print(f"Wrote {PAGE.relative_to(ROOT)} ({len(fault_tests())} fault tests)")
    return 0
