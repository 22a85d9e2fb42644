"""Benchmark harness (issue #7): ``python -m bench.run`` (full) or ``--smoke`` (seconds)."""
