"""Regenerate docs/errors.md: python scripts/error_table.py (runs every bad input of the table)."""

from linzoo.reports.errors import main

if __name__ == "__main__":
    main()
