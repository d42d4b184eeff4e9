"""Retrieval metrics over ranked label lists."""

from __future__ import annotations

from collections.abc import Sequence


def precision_at(relevant: Sequence[bool], k: int) -> float:
    """Fraction of the first ``k`` results that are relevant."""
    top = list(relevant[:k])
    return sum(top) / k if k else 0.0


def average_precision_at(relevant: Sequence[bool], k: int, total_relevant: int) -> float:
    """AP@k: mean of precision@i over the relevant ranks i <= k, divided by min(k, total_relevant)."""
    if total_relevant == 0:
        return 0.0
    hits = 0
    score = 0.0
    for rank, is_relevant in enumerate(relevant[:k], start=1):
        if is_relevant:
            hits += 1
            score += hits / rank
    return score / min(k, total_relevant)
