"""Developer tooling that needs a clone (benchmarks, generated reports); not part of the wheel."""
