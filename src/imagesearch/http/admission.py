"""Admission control: a bounded number of searches per server process, the rest turned away at once.

Why: decode + embed take the CPU for 10-20 ms each; past what the cores can
absorb, queued requests only wait longer (p99 in seconds) and hold memory.
Turning the excess away at once, with the documented overload error, keeps
the latency of admitted requests bounded and memory flat; the clients retry.
Counted on the event loop (one thread), so no lock is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ErrorCode, RequestError

#: What an overloaded server tells clients to wait, in seconds.
RETRY_AFTER = 1


class Admission:
    """At most ``limit`` searches at once in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the slots for a search, or raise ``Overloaded`` when none is free."""
        if self.active >= self.limit:
            raise RequestError(ErrorCode.Overloaded, limit=self.limit)
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
