"""From image neighbours to a ranked product list: aggregate, decide, sort.

Pure functions over plain data, so each rule is tested on its own.

* A product's score is its best image's score (its matched image is kept).
* ``similar`` keeps products above a minimum score, best first, up to a cap.
* ``same`` looks at the few best candidates (within a window of the top
  score) and keeps those that are verified as the same item by local
  features (enough geometric inliers, :mod:`imagesearch.vision.verify`), or
  that stand far above the query's background (the mean score of the products
  ranked 5th to 15th) for pictures too plain for keypoints, or that have some of
  both (fewer inliers, a smaller lead: two weak signs that agree).  The
  thresholds are calibrated in BENCHMARKS.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..vision.verify import VERIFIER
from .results import RankedItem

BACKGROUND_RANKS = (4, 15)
#: (joint_inliers, joint_margin) of a rule without the joint part: no candidate reaches them.
NO_JOINT: tuple[int, float] = (10**9, 10.0)


@dataclass(frozen=True)
class SameThresholds:
    """The numbers of the "same" rule, with how they were obtained.

    A candidate is the same item with ``min_inliers`` geometric inliers, or standing ``margin`` above the
    background, or with both ``joint_inliers`` and a lead of ``joint_margin`` (off unless set).
    """

    min_inliers: int
    margin: float
    source: str = "settings"
    #: The verifier whose inlier counts ``min_inliers`` is in (calibrations before it was recorded: ORB's).
    verifier: str = VERIFIER
    joint_inliers: int = NO_JOINT[0]
    joint_margin: float = NO_JOINT[1]

    def accepts(self, inliers: int, lead: float) -> bool:
        """Whether a candidate with ``inliers`` and ``lead`` (its score minus the background) is the same item."""
        return bool(self.accepted(np.asarray(inliers), np.asarray(lead)))

    def accepted(self, inliers: np.ndarray, lead: np.ndarray) -> np.ndarray:
        """:meth:`accepts` over arrays of candidates (calibration rates thousands of rules this way)."""
        return (inliers >= self.min_inliers) | (lead >= self.margin) | ((inliers >= self.joint_inliers) & (lead >= self.joint_margin))

    def numbers(self) -> dict[str, float]:
        """The rule as people read it (``imagesearch info``, ``calibrate``): the joint pair only when it is on."""
        shown: dict[str, float] = {"min_inliers": self.min_inliers, "margin": self.margin}
        if (self.joint_inliers, self.joint_margin) != NO_JOINT:
            shown.update(joint_inliers=self.joint_inliers, joint_margin=self.joint_margin)
        return shown

    def to_json(self) -> str:
        return json.dumps({"min_inliers": self.min_inliers, "margin": self.margin, "source": self.source, "verifier": self.verifier,
                           "joint_inliers": self.joint_inliers, "joint_margin": self.joint_margin})

    @classmethod
    def from_json(cls, text: str) -> SameThresholds:
        """A stored calibration (one from before the joint rule keeps it off: its rates were measured without it)."""
        data = json.loads(text)
        return cls(int(data["min_inliers"]), float(data["margin"]), str(data.get("source", "calibration")), str(data.get("verifier", "orb")),
                   int(data.get("joint_inliers", NO_JOINT[0])), float(data.get("joint_margin", NO_JOINT[1])))


def aggregate(scores: np.ndarray, image_ids: np.ndarray, owners: np.ndarray) -> list[RankedItem]:
    """Best image per product, sorted by score (desc), then product key for determinism.

    ``owners[image_id]`` is the image's product key, or -1 (image gone since the index was built).
    Scores are clipped to [0, 1] (cosines of unit vectors, give or take rounding).  Vectorised: it
    runs on every search, over the few hundred neighbours.
    """
    image_ids = np.asarray(image_ids, dtype=np.int64)
    known = (image_ids >= 0) & (image_ids < len(owners))
    products = np.full(len(image_ids), -1, dtype=np.int64)
    products[known] = owners[image_ids[known]]
    keep = products >= 0
    clipped = np.clip(np.asarray(scores, dtype=np.float64)[keep], 0.0, 1.0)
    products, image_ids = products[keep], image_ids[keep]
    # Each product's best image: the first of its rows once sorted by score, ties in the order found.
    order = np.lexsort((np.arange(len(products)), -clipped))
    _, first = np.unique(products[order], return_index=True)
    best = order[first]
    best = best[np.lexsort((products[best], -clipped[best]))]
    return [RankedItem(pk, score, image_id)
            for pk, score, image_id in zip(products[best].tolist(), clipped[best].tolist(), image_ids[best].tolist())]


def background(items: Sequence[RankedItem], ranks: tuple[int, int] = BACKGROUND_RANKS) -> float:
    """Mean score of the products at ``ranks`` (0-based, end excluded); 0 if there are none."""
    window = [item.score for item in items[ranks[0] : ranks[1]]]
    return float(np.mean(window)) if window else 0.0


def same_candidates(items: Sequence[RankedItem], count: int, window: float, min_score: float) -> list[RankedItem]:
    """The products worth verifying: among the first ``count``, within ``window`` of the best score."""
    if not items:
        return []
    floor = max(min_score, items[0].score - window)
    return [item for item in items[:count] if item.score >= floor]


def select_same(
    items: Sequence[RankedItem], candidates: Sequence[RankedItem], inliers: Mapping[int, int], thresholds: SameThresholds
) -> list[RankedItem]:
    """The candidates ``thresholds`` accepts, given their ``inliers`` and their lead over the background of ``items``."""
    floor = background(items)
    return [item for item in candidates if thresholds.accepts(inliers.get(item.product_pk, 0), item.score - floor)]


def collapse(
    items: Sequence[RankedItem], vectors: np.ndarray, min_cosine: float, price_key: Callable[[int], Decimal | None]
) -> list[RankedItem]:
    """One result per item sold by several listings: listings whose matched images are near-identical
    (cosine of ``vectors``, one row per item, at least ``min_cosine``) are one item.

    Greedy in rank order: each listing joins the first group whose best listing it matches, so a group
    never chains away from its best match.  A group is shown as its cheapest listing, scored as its best,
    with every listing in ``offers``, cheapest first (price ties: better match first).
    """
    groups: list[list[int]] = []
    for index in range(len(items)):
        home = next((group for group in groups if float(vectors[group[0]] @ vectors[index]) >= min_cosine), None)
        if home is None:
            groups.append([index])
        else:
            home.append(index)
    collapsed = []
    for group in groups:
        members = [items[index] for index in group]
        by_price = sorted(members, key=lambda item: (_price_or_inf(price_key(item.product_pk)), -item.score, item.product_pk))
        cheapest = by_price[0]
        collapsed.append(RankedItem(cheapest.product_pk, members[0].score, cheapest.image_id,
                                    tuple(item.product_pk for item in by_price) if len(members) > 1 else ()))
    return collapsed


def _price_or_inf(price: Decimal | None) -> Decimal:
    return price if price is not None else Decimal("Infinity")


def select_similar(items: Sequence[RankedItem], min_score: float, cap: int) -> list[RankedItem]:
    """The ``cap`` best products scoring at least ``min_score``."""
    return [item for item in items if item.score >= min_score][:cap]


def sort_items(
    items: Sequence[RankedItem],
    sort_type: str,
    sort_order: str,
    price_key: Callable[[int], Decimal | None],
    orders_key: Callable[[int], int],
    product_id_key: Callable[[int], str],
) -> list[RankedItem]:
    """Order by price, orders or score; ties by score (desc), then product_id (asc).

    Two stable sorts: first the tie-break, then the primary key (reversed when
    descending), so the tie order is the same in both directions.  A price
    that cannot be compared (its currency has no rate) sorts last either way.
    """
    tie_ordered = sorted(items, key=lambda item: (-item.score, product_id_key(item.product_pk)))
    primary: Callable[[RankedItem], object]
    if sort_type == "price":
        unpriced = [item for item in tie_ordered if price_key(item.product_pk) is None]
        priced = [item for item in tie_ordered if price_key(item.product_pk) is not None]
        return sorted(priced, key=lambda item: price_key(item.product_pk), reverse=(sort_order == "desc")) + unpriced  # type: ignore[arg-type,return-value]
    if sort_type == "orders":
        primary = lambda item: orders_key(item.product_pk)  # noqa: E731
    else:
        primary = lambda item: round(item.score, 6)  # noqa: E731
    return sorted(tie_ordered, key=primary, reverse=(sort_order == "desc"))
