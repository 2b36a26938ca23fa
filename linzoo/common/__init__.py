"""Shared helpers of every layer: the user errors and value checks (plain Python)."""
