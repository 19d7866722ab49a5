"""Benchmarks: each bench_<name>.py prints its figures as one JSON line last; run.py collects them."""
