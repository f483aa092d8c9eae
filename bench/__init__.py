"""Benchmarks: they print figures and how they were obtained; they never pass or fail."""
