"""Benchmarks: scripts that print tables (never timed tests)."""
