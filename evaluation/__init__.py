"""Evaluation-only code (counters, scores) used by tests and benchmarks; never imported by the pack."""
