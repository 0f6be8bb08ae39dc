"""Benchmarks, run by hand (`python -m benchmarks.<name>` from the repository root); results in RESULTS.md."""
