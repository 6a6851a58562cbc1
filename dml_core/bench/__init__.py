"""Measuring: the bench run and BENCHMARKS.md, what limits quality (ceiling), index scale, and speed."""
