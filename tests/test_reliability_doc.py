"""docs/reliability.md lists the fault tests with what each proves, generated from their docstrings."""

from __future__ import annotations

from dev.reports.reliability import PAGE, fault_tests, page_with_table


def test_the_reliability_page_is_up_to_date() -> None:
    """The table in docs/reliability.md is what scripts/reliability_table.py makes of today's fault
    tests: a new, renamed or re-described fault test fails here until the page is regenerated."""
    page = PAGE.read_text()
    assert page_with_table(page) == page, "docs/reliability.md is out of date: run python scripts/reliability_table.py"
    faults = {fault for fault, *_ in fault_tests()}
    assert {"full disk", "read-only paths", "hostile files", "run-directory claims, concurrent runs"} <= faults
