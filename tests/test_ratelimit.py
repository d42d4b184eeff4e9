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
