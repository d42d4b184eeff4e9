"""Ranking rules: aggregation to products, same/similar decisions, deterministic sorting."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from imagesearch.search.ranking import (
    SameThresholds,
    aggregate,
    background,
    same_candidates,
    select_same,
    select_similar,
    sort_items,
)
from imagesearch.search.results import RankedItem


def test_product_score_is_its_best_image() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    ids = np.array([10, 11, 12, 13])
    owners = np.array([-1] * 10 + [1, 2, 1, 3])
    ranked = aggregate(scores, ids, owners)
    assert [(item.product_pk, item.image_id) for item in ranked] == [(1, 10), (2, 11), (3, 13)]


def test_unknown_images_are_ignored_and_scores_clipped() -> None:
    ranked = aggregate(np.array([1.0000002, 0.5, -0.1, 0.9]), np.array([1, 2, 3, 99]), np.array([-1, 1, -1, 3]))
    assert [item.score for item in ranked] == [1.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25]) | st.floats(-0.25, 1.25, width=32), st.integers(-1, 12)), max_size=40), st.lists(st.integers(-1, 4), min_size=1, max_size=10))
def test_aggregate_keeps_each_products_first_best_image(rows: list[tuple[float, int]], owner_list: list[int]) -> None:
    """The vectorised aggregation is the plain rule: each product's highest clipped score, the first such
    image in the order given; products by score, then key."""
    owners = np.array(owner_list, dtype=np.int64)
    best: dict[int, RankedItem] = {}
    for score, image_id in rows:
        product = int(owners[image_id]) if 0 <= image_id < len(owners) else -1
        clipped = min(1.0, max(0.0, float(np.float32(score))))
        if product >= 0 and (product not in best or clipped > best[product].score):
            best[product] = RankedItem(product, clipped, image_id)
    expected = sorted(best.values(), key=lambda item: (-item.score, item.product_pk))
    scores = np.array([score for score, _ in rows], dtype=np.float32)
    ids = np.array([image_id for _, image_id in rows], dtype=np.int64)
    assert aggregate(scores, ids, owners) == expected


def items(*scores: float) -> list[RankedItem]:
    return [RankedItem(index, score, index) for index, score in enumerate(scores)]


def test_background_is_mean_of_ranks_5_to_15() -> None:
    ranked = items(*([0.9] * 4 + [0.5] * 11 + [0.1] * 5))
    assert background(ranked) == 0.5
    assert background(items(0.9)) == 0.0


def test_same_candidates_window() -> None:
    ranked = items(0.9, 0.85, 0.79, 0.7, 0.6)
    assert [item.product_pk for item in same_candidates(ranked, 10, 0.1, 0.5)] == [0, 1]
    assert [item.product_pk for item in same_candidates(ranked, 1, 0.5, 0.5)] == [0]
    assert same_candidates(items(0.4, 0.3), 10, 0.5, 0.5) == []
    assert same_candidates([], 10, 0.1, 0.5) == []


def test_same_needs_inliers_or_a_large_margin_or_some_of_both() -> None:
    ranked = items(0.95, 0.94, 0.93, 0.58, 0.55, 0.55, 0.54, 0.53, 0.52, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
    candidates = ranked[:3]
    chosen = select_same(ranked, candidates, {0: 200, 1: 3, 2: 40}, SameThresholds(35, 0.5))
    assert [item.product_pk for item in chosen] == [0, 2]
    chosen = select_same(ranked, candidates, {}, SameThresholds(35, 0.4))
    assert [item.product_pk for item in chosen] == [0, 1, 2]  # 0.93 - 0.52 >= 0.4
    # The joint rule: 12 inliers and a lead of 0.41 together (each too weak alone); 3 inliers are not enough.
    joint = SameThresholds(35, 0.5, joint_inliers=10, joint_margin=0.4)
    assert [item.product_pk for item in select_same(ranked, candidates, {0: 12, 1: 3, 2: 12}, joint)] == [0, 2]
    assert not joint.accepts(9, 0.45) and joint.accepts(10, 0.4) and joint.accepts(0, 0.5) and joint.accepts(35, 0.0)


def test_thresholds_stored_before_the_joint_rule_keep_it_off() -> None:
    old = SameThresholds.from_json('{"min_inliers": 20, "margin": 0.2, "source": "calibrated", "verifier": "rootsift-homography"}')
    assert (old.joint_inliers, old.joint_margin) == (10**9, 10.0) and not old.accepts(19, 0.19)
    rule = SameThresholds(25, 0.25, "calibrated", joint_inliers=10, joint_margin=0.08)
    assert SameThresholds.from_json(rule.to_json()) == rule


def test_similar_applies_floor_and_cap() -> None:
    ranked = items(0.9, 0.8, 0.7, 0.3)
    assert [item.product_pk for item in select_similar(ranked, 0.5, 2)] == [0, 1]


def test_sorting_is_deterministic_with_ties() -> None:
    ranked = [RankedItem(1, 0.9, 1), RankedItem(2, 0.8, 2), RankedItem(3, 0.8, 3), RankedItem(4, 0.7, 4)]
    prices = {1: Decimal("5"), 2: Decimal("5"), 3: Decimal("1"), 4: Decimal("5")}
    ids = {1: "d", 2: "b", 3: "c", 4: "a"}
    volume = {1: 10, 2: 10, 3: 10, 4: 99}

    def order(sort_type: str, sort_order: str) -> list[int]:
        result = sort_items(ranked, sort_type, sort_order, prices.__getitem__, volume.__getitem__, ids.__getitem__)
        return [item.product_pk for item in result]

    assert order("price", "asc") == [3, 1, 2, 4]  # equal prices: best score first
    assert order("price", "desc") == [1, 2, 4, 3]
    assert order("orders", "desc") == [4, 1, 2, 3]
    assert order("best", "desc") == [1, 2, 3, 4]  # 0.8 tie broken by product_id b < c
    assert order("best", "asc") == [4, 2, 3, 1]
