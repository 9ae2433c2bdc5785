"""Benchmarks: scripts that print tables (never timed tests).

``python -m training.bench`` (``make bench``) is the suite of issue 7: latency, quality, flicker, browser,
training throughput and GPU tables side by side with the peer, written to BENCHMARKS.md; ``--quick`` for a
short run. ``design.py`` is the realtime tier's design study.
"""
