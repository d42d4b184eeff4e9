"""Token buckets, with a fake clock."""

from __future__ import annotations

from imagesearch.http.ratelimit import RateLimiter, ban_seconds


def test_burst_then_refill() -> None:
    limiter = RateLimiter()
    assert [limiter.acquire("a", 2, now=0.0) for _ in range(3)][:2] == [0.0, 0.0]
    wait = limiter.acquire("a", 2, now=0.0)
    assert 0 < wait <= 0.5 and ban_seconds(wait) == 1
    assert limiter.acquire("a", 2, now=0.6) == 0.0
    assert limiter.acquire("b", 2, now=0.0) == 0.0  # apps do not share buckets


def test_share_between_workers() -> None:
    limiter = RateLimiter(share=0.5)
    assert limiter.acquire("a", 2, now=0.0) == 0.0
    assert limiter.acquire("a", 2, now=0.0) > 0.9  # 1 call/s in this process


def test_workers_on_several_machines_share_one_budget_per_app(postgres_url: str) -> None:
    """Two limiters (two machines) over one PostgreSQL table: the app's burst is spent once, not once per machine."""
    import time

    from imagesearch.http.ratelimit import SharedRateLimiter
    from imagesearch.pg import postgres_engine

    first, second = (SharedRateLimiter(postgres_engine(postgres_url, "catalog_url")) for _ in range(2))
    granted = [first.acquire("a", 4), second.acquire("a", 4), first.acquire("a", 4), second.acquire("a", 4)]
    assert granted == [0.0, 0.0, 0.0, 0.0]
    waits = [first.acquire("a", 4), second.acquire("a", 4)]
    assert all(0 < wait <= 0.25 + 0.05 for wait in waits)
    assert second.acquire("b", 4) == 0.0  # apps do not share buckets
    time.sleep(0.3)
    assert first.acquire("a", 4) == 0.0  # refilled at 4 per second, on the database's clock
