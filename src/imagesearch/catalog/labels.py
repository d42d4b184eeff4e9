"""What a filter selects, as labels a vector store can keep beside each vector and filter on itself.

The embedded FAISS index is handed a filter as a set of ids read from SQL;
a server store (Milvus, pgvector) keeps a few labels per image instead and
applies the filter in its own search expression, so a filter keeping half of
ten million images is one condition, not five million ids.  A label is an
opaque string to the store: ``ship:FR`` (the product ships to France),
``ship:*`` (it ships everywhere), ``cat:101`` (first or second category 101).
A filter is a conjunction of clauses, each satisfied by any of its labels.
"""

from __future__ import annotations

from collections.abc import Iterable

EVERYWHERE = "ship:*"


def labels_of(ship_to: Iterable[str] | None, categories: Iterable[str | None]) -> frozenset[str]:
    """The labels of a product's images: where it ships (None: everywhere) and its categories."""
    shipping = {EVERYWHERE} if ship_to is None else {f"ship:{country}" for country in ship_to}
    return frozenset(shipping | {f"cat:{category}" for category in categories if category})


def filter_clauses(ship_to: str | None, category_id: str | None) -> tuple[frozenset[str], ...]:
    """The filter "ships to ``ship_to`` and is in ``category_id``" as clauses of labels (any one of each)."""
    clauses = []
    if ship_to is not None:
        clauses.append(frozenset({f"ship:{ship_to}", EVERYWHERE}))
    if category_id is not None:
        clauses.append(frozenset({f"cat:{category_id}"}))
    return tuple(clauses)
