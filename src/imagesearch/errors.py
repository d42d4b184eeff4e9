"""Errors that reach a user: each kind of bad input has its own stable code.

The HTTP edge maps :class:`SearchError` to the searchV2 ``result`` shape
(``ret=false``, ``code``, ``messages``); the CLI prints it.  Codes are part of
the public contract and listed in the README, so they never change meaning.
"""

from __future__ import annotations


class ImageSearchError(Exception):
    """Base class of every error this package raises on purpose."""


class SearchError(ImageSearchError):
    """A request the service refuses, with a code and a message naming the parameter."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"SearchError({self.code!r}, {self.message!r})"


class ImageError(SearchError):
    """An image that cannot be accepted (too large, not an image, a decompression bomb)."""


class CatalogError(ImageSearchError):
    """The catalog or index is missing, inconsistent or built with another embedder."""
