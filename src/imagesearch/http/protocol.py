"""The HTTP/1.1 connection protocol the server runs: uvicorn's, with a deadline on request heads.

Why: uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but
waits for a request's head as long as the client likes, so a client trickling
header bytes (slowloris) holds a connection, and enough of them hold them all.
Here a request's head (request line and headers) must arrive within
``header_timeout`` seconds of its first byte, or of the connection's opening;
otherwise the connection is closed.  The body is bounded elsewhere (its size,
while streaming).
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import Settings

#: The setting's environment variable: ``serve`` puts every setting its workers need there.
HEADER_TIMEOUT_ENV = "IMAGESEARCH_HEADER_TIMEOUT"


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head is too slow to arrive."""

    _head_timer: asyncio.TimerHandle | None = None

    @staticmethod
    def head_timeout() -> float:
        return float(os.environ.get(HEADER_TIMEOUT_ENV, Settings.header_timeout))

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout(), self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()  # the next request on a kept-alive connection gets its own deadline

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)
