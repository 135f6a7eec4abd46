"""Benchmarks of issue 4, run against a real devnet: ``python -m benchmarks [--smoke] [--only NAME ...]``."""
