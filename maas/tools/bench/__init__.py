"""Benchmarks that report, never assert: `maas bench SUITE` measures contenders side by side in one run."""
