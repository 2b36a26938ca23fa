"""Shared helpers of every layer: the user errors, refused writes and value checks (plain Python)."""
