"""Per-app token buckets: the platform's ``ApiCallLimit``.

Each app may make ``rate`` calls per second on average, in bursts of up to
``rate`` calls.  Buckets live in the server process; with several workers each
process enforces ``rate / workers`` so that the app's total stays at ``rate``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by app."""

    def __init__(self, share: float = 1.0) -> None:
        self.share = share
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, rate: float, now: float | None = None) -> float:
        """Take one token; returns 0 if allowed, else the seconds until a token is available."""
        rate = max(rate * self.share, 1e-6)
        capacity = max(1.0, rate)
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate


def ban_seconds(wait: float) -> int:
    """Whole seconds for the platform's "this ban will last N seconds" message."""
    return max(1, math.ceil(wait))
