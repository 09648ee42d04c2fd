"""Benchmarks: each module is run with `python -m benchmarks.<name>` (see `make bench`)."""
