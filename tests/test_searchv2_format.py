"""searchV2 value formats: volume, score, evaluate_rate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imagesearch.search.searchv2 import format_rate, format_score, format_volume


@pytest.mark.parametrize(
    ("volume", "text"), [(0, "0"), (6, "6"), (99, "99"), (100, "100+"), (712, "700+"), (1500, "1500+"), (1599, "1500+"), (12345, "12000+")]
)
def test_volume(volume: int, text: str) -> None:
    assert format_volume(volume) == text


@pytest.mark.parametrize(("score", "text"), [(0.99999994, "1.000"), (1.0000001, "1.000"), (0.9674, "0.967"), (-0.2, "0.000")])
def test_score(score: float, text: str) -> None:
    assert format_score(score) == text


@pytest.mark.parametrize(("rate", "text"), [(None, ""), (Decimal("4.9"), "4.9"), (Decimal("5"), "5.0"), (Decimal("4.75"), "4.75")])
def test_evaluate_rate(rate: Decimal | None, text: str) -> None:
    assert format_rate(rate) == text
