"""Per-app token buckets: the platform's ``ApiCallLimit``.

Each app may make ``rate`` calls per second on average, in bursts of up to
``rate`` calls.  On one machine the buckets live in the server process; with
several workers each process enforces ``rate / workers`` so that the app's
total stays at ``rate``.  Workers on several machines (a PostgreSQL catalog)
share one bucket per app in the database instead (:class:`SharedRateLimiter`):
one budget however many workers answer, at the cost of one small statement
per request.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine


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


class SharedRateLimiter:
    """Token buckets in a PostgreSQL table, refilled and taken in one atomic statement on the database's clock
    (the machines' clocks never enter into it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.begin() as connection:
            connection.execute(text(
                "CREATE TABLE IF NOT EXISTS rate_buckets (app_key varchar(64) PRIMARY KEY, tokens double precision NOT NULL, "
                "updated double precision NOT NULL, granted boolean NOT NULL)"
            ))

    def acquire(self, key: str, rate: float) -> float:
        """Take one token; returns 0 if allowed, else the seconds until a token is available."""
        rate = max(rate, 1e-6)
        capacity = max(1.0, rate)
        refilled = "LEAST(:capacity, rate_buckets.tokens + (EXTRACT(EPOCH FROM clock_timestamp()) - rate_buckets.updated) * :rate)"
        with self.engine.begin() as connection:
            tokens, granted = connection.execute(text(
                "INSERT INTO rate_buckets AS rate_buckets (app_key, tokens, updated, granted) "
                "VALUES (:key, :capacity - 1, EXTRACT(EPOCH FROM clock_timestamp()), true) "
                f"ON CONFLICT (app_key) DO UPDATE SET tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END, "
                f"granted = {refilled} >= 1, updated = EXTRACT(EPOCH FROM clock_timestamp()) RETURNING tokens, granted"
            ), {"key": key, "rate": rate, "capacity": capacity}).one()
        return 0.0 if granted else (1.0 - tokens) / rate


def ban_seconds(wait: float) -> int:
    """Whole seconds for the platform's "this ban will last N seconds" message."""
    return max(1, math.ceil(wait))
