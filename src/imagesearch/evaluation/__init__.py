"""Evaluation: the copy transformations and retrieval metrics the benchmarks and calibration use."""
